import * as pulumi from "@pulumi/pulumi";
import { ObjectStore } from "./objectStore";
import { hubDesiredState, MeshMember, natsPeers, OperatorPeer } from "../lib/meshPeers";
import { agentKeyReportKey, DesiredState, desiredStateKey, desiredStateProblems, natsServerReportKey, RUNTIME_FORMAT_VERSION } from "../lib/runtimeChannel";
import { NamingContext } from "../lib/naming";
import { RuntimeDocument } from "../providers/runtimeDocument";
import { PresignedUrl } from "../providers/presignedUrl";
import { AgentKeyRollout, AGENT_KEY_REPORT_DEADLINE_SECONDS } from "../providers/agentKeyRollout";
import { AgentKeyOffer, agentKeyId, sealAgentKey } from "../lib/agentKey";
import { SIGV4_MAX_EXPIRY_SECONDS } from "../lib/limits";
import { NatsServerRelease, natsServerOffer } from "../lib/natsRelease";
import { NatsServerUpgradeWait } from "../providers/natsServerUpgradeWait";
import { NATS_SERVER_MOVE_REPORT_DEADLINE_SECONDS } from "../cloudinit/agent";

/**
 * A NATS node as the runtime channel needs it: its mesh identity, its
 * certificates, its routes. Separate outputs, so a renewed certificate
 * (unknown until signed) leaves every other member's peer set known and
 * unchanged in a preview.
 */
export interface NatsRuntimeMember {
    /** The node's resource name (nats-0): its upgrade wait is `<name>-server-upgrade`. */
    name: string;
    member: pulumi.Output<MeshMember>;
    /** PEM by file name under the node's TLS directory (the CAs and the node's own certificates). */
    certificates: pulumi.Output<Record<string, string>>;
    /** host:port of every other server's route listener. */
    routes: string[];
}

export interface MeshRuntimeArgs {
    /** Project and stack: desired states live under the stack's name. */
    naming: NamingContext;
    /** The runtime bucket (ObjectStore.runtime) the agents read. */
    objectStore: ObjectStore;
    /** The mesh subnet (MeshTopology.subnet): every allowed IP must lie in it. */
    subnet: string;
    /**
     * Member names, known when the program starts (the hub's component name,
     * the NATS hostnames): each document's key is built from them, because a
     * key that waits for the nodes is unknown at preview and every desired
     * state would preview as a replacement.
     */
    names: { hub: string; nats: string[] };
    /** The hub as it booted (WgCache.member). */
    hub: pulumi.Input<MeshMember>;
    /** Every NATS node as it booted, with its certificates and routes (NatsCluster.runtimeMembers). */
    nats: NatsRuntimeMember[];
    /** Operators' peers (meshstack:wgOperatorPeers), reaching the mesh through the hub. */
    operators: OperatorPeer[];
    /** Root's SSH public keys on every member (meshstack:sshAuthorizedKeys, validated with the config). */
    authorizedKeys: string[];
    /** The nats-server release every NATS node runs (meshstack:natsServerVersion, natsServerDownloadUrl and its checksums). */
    natsServer: NatsServerRelease;
    /**
     * What every desired state is written after: the NATS scale-down
     * (NatsCluster.scaleDown). A leaving node must stay every member's
     * WireGuard peer and route until its replicas have moved and it has left
     * the meta group. Written beside the scale-down, the survivors dropped
     * nats-3 and nats-4 mid-evacuation on the box's VMs: the tunnels to them
     * closed, the meta group of five had no quorum and no leader, and the
     * evacuation could not go on.
     */
    after?: pulumi.Resource[];
}

/**
 * Writes each member's desired state into the runtime bucket, where its
 * agent applies it in place: the hub's peers (NATS nodes and operators),
 * and for each NATS node its peers (the hub and every other NATS node
 * directly), its certificates and its routes; and for every member root's
 * SSH keys and the agents' key, sealed to the member, and for each NATS node
 * the nats-server release. This is the only place
 * a change to the mesh (a node added or replaced, a certificate renewed, an
 * operator or an SSH key added, the agents' key rotated, another nats-server
 * release) reaches running nodes, and it replaces none of them. It then waits
 * until every member's
 * agent reports reading with the current agents' key, which is what an old
 * key's revocation waits for (providers/agentKeyRollout.ts).
 *
 * A new nats-server release is rolled one NATS node at a time: node i's
 * desired state is written only after node i-1's upgrade wait
 * (providers/natsServerUpgradeWait.ts) saw it report the release healthy.
 * When the release does not change, the waits do nothing and delay nothing.
 * The hub runs no nats-server: its desired state waits for none of them.
 */
export class MeshRuntime extends pulumi.ComponentResource {
    /** Digest of each member's desired state, by member name. */
    public readonly desiredStateDigests: pulumi.Output<Record<string, string>>;
    /** Members that had not reported the agents' current key by the rollout's deadline (none when all did). */
    public readonly agentKeyMissing: pulumi.Output<string[]>;
    /** Every desired state and every nats-server upgrade wait: what a step that needs the mesh as this `up` leaves it comes after. */
    public readonly written: pulumi.Resource[];

    constructor(name: string, args: MeshRuntimeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:MeshRuntime", name, {}, opts);
        if (args.names.nats.length !== args.nats.length) {
            throw new pulumi.ResourceError(`MeshRuntime ${name}: ${args.names.nats.length} NATS names for ${args.nats.length} NATS members`, this);
        }
        const store = args.objectStore;
        const runtime = store.runtime;
        const members = pulumi.all(args.nats.map((n) => n.member));
        const hub = pulumi.output(args.hub);
        const agentKey = pulumi.all([store.agentCredentials.accessKeyId, store.agentCredentials.secretAccessKey])
            .apply(([accessKeyId, secretAccessKey]) => ({ accessKeyId, secretAccessKey }));
        const currentKeyId = pulumi.unsecret(agentKey.apply((pair) => agentKeyId(pair.accessKeyId)));
        // Signed again for another key or another instance, so a rotation or a rebuilt node always has a live URL.
        // The longest SigV4 allows: a node offline through the rotation may report later.
        const offerTo = (node: string, member: pulumi.Output<MeshMember>, resourceName: string): pulumi.Output<AgentKeyOffer> => {
            const reportUrl = new PresignedUrl(`${resourceName}-report-url`, {
                ...runtime,
                key: agentKeyReportKey(args.naming.stack, node),
                method: "PUT",
                expiresInSeconds: SIGV4_MAX_EXPIRY_SECONDS,
                keepers: { agentKeyId: currentKeyId, instanceId: member.apply((m) => m.instanceId) },
            }, { parent: this });
            return pulumi.all([agentKey, currentKeyId, member, reportUrl.url]).apply(([pair, id, me, url]) => ({ id, sealed: sealAgentKey(pair, me.publicKey), reportUrl: url }));
        };
        const hubName = `${name}-hub`;
        const states: { node: string; state: pulumi.Output<DesiredState>; resourceName: string; natsIndex?: number }[] = [
            {
                node: args.names.hub,
                state: pulumi.all([hub, members, offerTo(args.names.hub, hub, hubName)]).apply(([h, all, offer]): DesiredState => ({
                    ...hubDesiredState(h, all, args.operators), authorizedKeys: args.authorizedKeys, agentKey: offer,
                })),
                resourceName: hubName,
            },
            ...args.nats.map((entry, i) => {
                const resourceName = `${name}-nats-${i}`;
                const node = args.names.nats[i];
                // Signed again for another release or another instance, so each move has a live URL.
                const serverReportUrl = new PresignedUrl(`${resourceName}-server-report-url`, {
                    ...runtime,
                    key: natsServerReportKey(args.naming.stack, node),
                    method: "PUT",
                    expiresInSeconds: SIGV4_MAX_EXPIRY_SECONDS,
                    keepers: { version: args.natsServer.version, sha256: JSON.stringify(args.natsServer.sha256), instanceId: entry.member.apply((m) => m.instanceId) },
                }, { parent: this });
                return {
                    node,
                    state: pulumi.all([entry.member, entry.certificates, hub, members, offerTo(node, entry.member, resourceName), serverReportUrl.url])
                        .apply(([me, certificates, h, all, offer, serverUrl]): DesiredState => ({
                            version: RUNTIME_FORMAT_VERSION,
                            node: me.name,
                            instanceId: me.instanceId,
                            wireguard: { peers: natsPeers(me, h, all, args.subnet) },
                            certificates,
                            natsRoutes: entry.routes,
                            authorizedKeys: args.authorizedKeys,
                            agentKey: offer,
                            natsServer: natsServerOffer(args.natsServer, serverUrl),
                        })),
                    resourceName,
                    natsIndex: i,
                };
            }),
        ];
        // Each NATS node's document waits for the previous node's upgrade wait: the roll goes one node at a time.
        const upgradeWaits: NatsServerUpgradeWait[] = [];
        const documents = states.map(({ node, state, resourceName, natsIndex }) => {
            const content = state.apply((s) => {
                const problems = desiredStateProblems(s, args.subnet);
                if (s.node !== node) problems.push(`the desired state for ${node} names ${s.node}`);
                if (problems.length) throw new pulumi.ResourceError(`MeshRuntime ${name}: ${problems.join("; ")}`, this);
                return JSON.stringify(s, null, 2) + "\n";
            });
            const previousWait = natsIndex !== undefined && natsIndex > 0 ? [upgradeWaits[natsIndex - 1]] : [];
            const document = new RuntimeDocument(resourceName, {
                ...runtime,
                key: desiredStateKey(args.naming.stack, node),
                content: pulumi.secret(content),
            }, { parent: this, dependsOn: [...previousWait, ...(args.after ?? [])] });
            if (natsIndex !== undefined) {
                const entry = args.nats[natsIndex];
                upgradeWaits.push(new NatsServerUpgradeWait(`${entry.name}-server-upgrade`, {
                    ...runtime,
                    stack: args.naming.stack,
                    node,
                    instanceId: entry.member.apply((m) => m.instanceId),
                    release: args.natsServer,
                    deadlineSeconds: NATS_SERVER_MOVE_REPORT_DEADLINE_SECONDS,
                }, { parent: this, dependsOn: [document] }));
            }
            return document;
        });
        this.written = [...documents, ...upgradeWaits];
        this.desiredStateDigests = pulumi.all(documents.map((document, i) => document.contentSha256.apply((digest): [string, string] => [states[i].node, digest])))
            .apply((pairs) => Object.fromEntries(pairs));
        const instances = pulumi.all([hub, members]).apply(([h, all]) => Object.fromEntries([h, ...all].map((m) => [m.name, m.instanceId])));
        const rollout = new AgentKeyRollout(`${name}-agent-key-rollout`, {
            ...runtime,
            stack: args.naming.stack,
            agentKeyId: currentKeyId,
            nodes: instances,
            deadlineSeconds: AGENT_KEY_REPORT_DEADLINE_SECONDS,
            revokedBy: store.agentKeyRevokedBy,
        }, { parent: this, dependsOn: documents });
        this.agentKeyMissing = rollout.missing;
        this.registerOutputs({ desiredStateDigests: this.desiredStateDigests, agentKeyMissing: this.agentKeyMissing });
    }
}
