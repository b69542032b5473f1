import * as pulumi from "@pulumi/pulumi";
import { JetStreamKv } from "../../providers/jetstreamKv";
import { NatsDeployerAccess } from "./certificates";

export interface NatsControlPlaneKvArgs {
    /** Bucket name (letters, digits, - and _). */
    bucket: string;
    /** Replicas: start at 1, raise to 3 in place once every node is up (R3 before every node has joined cannot place its replicas). At most nodeCount. */
    replicas: number;
    /** Revisions kept per key (default 1). */
    history?: number;
    /** Seconds a value lives; 0 or unset keeps values forever. */
    ttlSeconds?: number;
    /** How long `pulumi up` waits for the nodes to boot and the bucket to reach its replicas (default 900). */
    timeoutSeconds?: number;
}

export interface NatsControlPlaneKvInput {
    kv: NatsControlPlaneKvArgs;
    /** Every node's client URL. */
    servers: pulumi.Output<string[]>;
    deployer: NatsDeployerAccess;
    /** What must be up first: the nodes, and their rejoin waits when they are on. */
    after: pulumi.Resource[];
    /** It holds the cluster's data. */
    protect?: boolean;
}

/**
 * The control-plane bucket, created over the client port. After the rejoin
 * waits when they are on: a KV change made while a rebuilt node is still
 * catching up meets its streams offline (a fixed cleanup delay used to hide
 * this ordering).
 */
export function natsControlPlaneKv(parent: pulumi.Resource, name: string, input: NatsControlPlaneKvInput): JetStreamKv {
    return new JetStreamKv(`${name}-kv`, {
        servers: input.servers,
        ...input.deployer,
        bucket: input.kv.bucket,
        replicas: input.kv.replicas,
        history: input.kv.history,
        ttlSeconds: input.kv.ttlSeconds,
        timeoutSeconds: input.kv.timeoutSeconds ?? 900,
    }, { parent, dependsOn: input.after, protect: input.protect });
}
