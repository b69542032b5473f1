import * as pulumi from "@pulumi/pulumi";
import { natsNodeImage, natsNodeName } from "../../lib/natsRollout";
import { rejoinPendingKey } from "../../lib/runtimeChannel";
import { NatsNode } from "../../lib/topology";
import { NatsImageRollout } from "../../providers/natsImageRollout";
import { NatsRejoin } from "../../providers/natsRejoin";
import { NatsMetaGroup } from "../../providers/natsMetaGroup";
import { NatsMembershipArgs, NatsScaleDown } from "../../providers/natsScaleDown";
import { NatsStreamGuard } from "../../providers/natsStreamGuard";
import { MeshNode } from "../meshNode";
import { ObjectStoreAccessOutputs } from "../objectStore";
import { NatsDeployerAccess } from "./certificates";

export interface NatsImageRolloutInput {
    stack: string;
    nodes: NatsNode[];
    /** The cluster's image, and images by node index that override it (meshstack:natsNodeImages). */
    image: string;
    nodeImages: Record<number, string>;
    /** The runtime bucket, where the rejoin waits leave their marks. */
    runtime: ObjectStoreAccessOutputs;
    /** Whether rejoin waits run: only then does the guard read their marks. */
    rejoinWaits: boolean;
}

/** The guard every node's instance waits for, and each node's image. */
export interface NatsImageRolloutGuard {
    guard: NatsImageRollout;
    imageOf(index: number): string;
}

/**
 * Every instance waits for the guard: no node is replaced unless its check()
 * let this up's image changes through, and (with the rejoin waits on) its
 * update found no earlier replacement unconfirmed.
 */
export function natsImageRolloutGuard(parent: pulumi.Resource, name: string, input: NatsImageRolloutInput): NatsImageRolloutGuard {
    const imageOf = (index: number) => natsNodeImage(index, input.image, input.nodeImages);
    const guard = new NatsImageRollout(`${name}-image-rollout`, {
        images: Object.fromEntries(input.nodes.map((n) => [natsNodeName(n.index), imageOf(n.index)])),
        rejoinMarks: input.rejoinWaits
            ? pulumi.output({ ...input.runtime, keys: Object.fromEntries(input.nodes.map((n) => [natsNodeName(n.index), rejoinPendingKey(input.stack, n.hostname)])) })
            : undefined,
    }, { parent });
    return { guard, imageOf };
}

export interface NatsRejoinWaitsInput {
    stack: string;
    /** The planned nodes, and their MeshNodes in the same order. */
    nodes: NatsNode[];
    meshNodes: MeshNode[];
    /** Each node's own client URL, in the same order. */
    clientUrls: pulumi.Output<string>[];
    deployer: NatsDeployerAccess;
    /** The runtime bucket, where each wait keeps its mark until the node is current. */
    runtime: ObjectStoreAccessOutputs;
    timeoutSeconds: number;
}

/** One wait per node, until it serves JetStream again and every stream replica on it is current. */
export function natsRejoinWaits(parent: pulumi.Resource, name: string, input: NatsRejoinWaitsInput): NatsRejoin[] {
    return input.meshNodes.map((meshNode, i) => new NatsRejoin(`${name}-${input.nodes[i].index}-rejoin`, {
        node: input.nodes[i].hostname,
        // A new instance id is what makes the wait run again: the node was replaced. Taken
        // through the key poll, so the deadline counts from the node's first boot, and not
        // through the whole node, whose bootstrap cleanup may still be deleting its object.
        instanceId: pulumi.all([meshNode.instance.id, meshNode.published.publicKey]).apply(([id]) => id),
        server: input.clientUrls[i],
        ...input.deployer,
        timeoutSeconds: input.timeoutSeconds,
        ...input.runtime,
        key: rejoinPendingKey(input.stack, input.nodes[i].hostname),
    }, { parent }));
}

export interface NatsStreamGuardsInput {
    /** The planned nodes, and their MeshNodes in the same order. */
    nodes: NatsNode[];
    meshNodes: MeshNode[];
    /** Each node's own client URL, in the same order. */
    clientUrls: pulumi.Output<string>[];
    deployer: NatsDeployerAccess;
}

/**
 * One guard per node, which refuses the node's deletion (replaced, or removed
 * by a lower natsNodeCount) while it holds the only replica of a stream not
 * accepted in meshstack:natsAcceptStreamLoss. Each takes its node's instance
 * id straight from the instance: that property dependency is what makes the
 * engine delete the guard before the instance in a deleteBeforeReplace
 * replacement (providers/natsStreamGuard.ts).
 */
export function natsStreamGuards(parent: pulumi.Resource, name: string, input: NatsStreamGuardsInput): NatsStreamGuard[] {
    const servers = pulumi.all(input.clientUrls);
    return input.meshNodes.map((meshNode, i) => new NatsStreamGuard(`${name}-${input.nodes[i].index}-stream-guard`, {
        name: natsNodeName(input.nodes[i].index),
        node: input.nodes[i].hostname,
        instanceId: meshNode.instance.id,
        servers,
        ...input.deployer,
    }, { parent }));
}

export interface NatsMembershipInput {
    /** The planned nodes and each one's own client URL, in the same order. */
    nodes: NatsNode[];
    clientUrls: pulumi.Output<string>[];
    deployer: NatsDeployerAccess;
    /** The system account user's password: removing a server from the meta group is the system account's. */
    systemPassword: pulumi.Output<string>;
    /** How long one leaving node's evacuation, or the meta group's settling, may take: the rejoin wait's deadline, for the same catching up. */
    timeoutSeconds: number;
}

/** The members, where the deploy reaches them and as whom: what the scale-down and the meta group's settling share. */
export function natsMembershipArgs(input: NatsMembershipInput): NatsMembershipArgs {
    return {
        members: input.nodes.map((n) => ({ name: natsNodeName(n.index), node: n.hostname })),
        servers: pulumi.all(input.clientUrls),
        ...input.deployer,
        systemPassword: input.systemPassword,
        timeoutSeconds: input.timeoutSeconds,
    };
}

/**
 * The cluster's scale-down: holds the members, and when an `up` declares
 * fewer, its update evacuates the leaving nodes and removes them from the
 * meta group, before the engine deletes anything the program no longer
 * declares (providers/natsScaleDown.ts).
 */
export function natsScaleDown(parent: pulumi.Resource, name: string, membership: NatsMembershipArgs, meshNodes: MeshNode[]): NatsScaleDown {
    return new NatsScaleDown(`${name}-scale-down`, {
        ...membership,
        instanceIds: meshNodes.map((meshNode) => meshNode.instance.id),
    }, { parent });
}

/**
 * The meta group settled to the members after `after` (every desired state
 * and upgrade wait): when an `up` declares fewer members, no member routes
 * to a leaving node any more, and no leaving node is a peer
 * (providers/natsMetaGroup.ts).
 */
export function natsMetaGroup(parent: pulumi.Resource, name: string, membership: NatsMembershipArgs, after: pulumi.Resource[]): NatsMetaGroup {
    return new NatsMetaGroup(`${name}-meta-group`, membership, { parent, dependsOn: after });
}
