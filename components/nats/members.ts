import * as pulumi from "@pulumi/pulumi";
import { agentFiles, NATS_NODE_AGENT } from "../../cloudinit/agent";
import {
    JetStreamLimits, NATS_NODE_LAYOUT, NATS_TLS_FILES, natsRouteAddresses, natsTlsPath,
    renderNatsCloudConfig, renderNatsClusterSecrets, renderNatsConf, renderNatsPrepareScript, renderNatsSystemAccount, renderNatsUnit,
} from "../../cloudinit/nats";
import { CertProfile, natsRouteCertProfile, natsServerCertProfile, opensslRequestConfig } from "../../cloudinit/natsCerts";
import { AGENT_KEY_PLACEHOLDER, NODE_BOOTSTRAP_LOG_PATH, PUBLISH_URL_PLACEHOLDER, renderNodeBootstrapScript, wgInterfaceSection } from "../../cloudinit/nodeBootstrap";
import { WG_QUICK_UNIT } from "../../cloudinit/wgMesh";
import { requestedIdentity } from "../../lib/certRequest";
import { BootstrapConfig, qualify } from "../../lib/config";
import { selectPublicIpv4 } from "../../lib/endpoint";
import { MeshMember } from "../../lib/meshPeers";
import { NamingContext } from "../../lib/naming";
import { desiredStateKey } from "../../lib/runtimeChannel";
import { NATS_WG_LISTEN_PORT, NatsNode } from "../../lib/topology";
import { MeshNode } from "../meshNode";
import type { NatsRuntimeMember } from "../meshRuntime";
import { ObjectStore } from "../objectStore";
import { NatsClusterCredentials, signNodeRequest } from "./certificates";
import { NatsImageRolloutGuard } from "./rollout";

/** Where every node runs and how it boots: the same for each node. */
export interface NatsNodeHosting {
    naming: NamingContext;
    region: string;
    instanceType: string;
    authorizedKeys: string[];
    firewallId: pulumi.Output<number>;
    /** Linode tags besides the role tags. */
    tags: string[];
    protect?: boolean;
    /** Rebuilds of protected nodes the stack accepts (meshstack:acceptRebuilds). */
    acceptedRebuilds: string[];
    objectStore: ObjectStore;
    bootstrap: BootstrapConfig;
    publishTimeoutSeconds: number;
}

/** What every server runs with: the same nats.conf settings on each node. */
export interface NatsServerSettings {
    clusterName: string;
    /** The WireGuard subnet the routes live in. */
    subnet: string;
    /** The name every data-plane certificate carries. */
    serviceName: string;
    jetstream: JetStreamLimits;
}

export interface NatsMembersInput {
    hosting: NatsNodeHosting;
    servers: NatsServerSettings;
    nodes: NatsNode[];
    rollout: NatsImageRolloutGuard;
    credentials: NatsClusterCredentials;
}

/** The nodes, and each as the runtime channel needs it, in node order. */
export interface NatsMembers {
    meshNodes: MeshNode[];
    runtimeMembers: NatsRuntimeMember[];
}

/** What every node's cloud-config carries unchanged. */
interface SharedNodeFiles {
    unit: string;
    prepareScript: string;
}

interface NodeCertProfiles {
    route: CertProfile;
    server: CertProfile;
}

/** Per node: its MeshNode, then its route and data-plane certificates signed from the requests it published. */
export function natsMembers(parent: pulumi.Resource, name: string, input: NatsMembersInput): NatsMembers {
    const layout = NATS_NODE_LAYOUT;
    const shared: SharedNodeFiles = {
        unit: renderNatsUnit({ layout, wants: [WG_QUICK_UNIT] }),
        prepareScript: renderNatsPrepareScript({ layout }),
    };
    const members = input.nodes.map((node) => natsMember(parent, name, node, input, shared));
    return { meshNodes: members.map((m) => m.meshNode), runtimeMembers: members.map((m) => m.runtimeMember) };
}

/** One profile per certificate: what the node asks for, what the deploy accepts, what it signs. */
function certificateProfiles(node: NatsNode, serviceName: string): NodeCertProfiles {
    return { route: natsRouteCertProfile(node), server: natsServerCertProfile(node, serviceName) };
}

function natsMember(parent: pulumi.Resource, name: string, node: NatsNode, input: NatsMembersInput, shared: SharedNodeFiles): { meshNode: MeshNode; runtimeMember: NatsRuntimeMember } {
    const { hosting, servers, credentials } = input;
    const profiles = certificateProfiles(node, servers.serviceName);
    const meshNode = new MeshNode(`${name}-${node.index}`, {
        naming: hosting.naming,
        region: hosting.region,
        instanceType: hosting.instanceType,
        image: input.rollout.imageOf(node.index),
        replaceAfter: [input.rollout.guard],
        cloudConfig: pulumi.secret(nodeCloudConfig(node, profiles, input, shared)),
        publish: {
            node: node.hostname,
            runtime: hosting.objectStore.runtime,
            expectedRequests: { route: requestedIdentity(profiles.route), server: requestedIdentity(profiles.server) },
            bootstrapLogPath: NODE_BOOTSTRAP_LOG_PATH,
            timeoutSeconds: hosting.publishTimeoutSeconds,
        },
        deleteBeforeReplace: true,
        authorizedKeys: hosting.authorizedKeys,
        firewallId: hosting.firewallId,
        tags: ["nats", servers.clusterName.toLowerCase(), ...hosting.tags],
        protect: hosting.protect,
        objectStore: hosting.objectStore,
        bootstrap: hosting.bootstrap,
        // An image change is the rollout guard's: one node per `up`.
        rebuild: { accepted: hosting.acceptedRebuilds, imageSource: `${qualify("natsImage")} / ${qualify("natsNodeImages")}`, imageRolled: true },
    }, { parent });
    const published = meshNode.published;
    const route = signNodeRequest(parent, `${name}-${node.index}-route`, published.requests.apply((r) => r.route), profiles.route, credentials.routeCa);
    const server = signNodeRequest(parent, `${name}-${node.index}-server`, published.requests.apply((r) => r.server), profiles.server, credentials.clientCa);
    const endpoint = pulumi.all([meshNode.ipv4s, meshNode.instance.ipAddress]).apply(([ips, main]) => `${selectPublicIpv4(ips, main, "a NATS node's WireGuard endpoint")}:${NATS_WG_LISTEN_PORT}`);
    const tlsFile = NATS_TLS_FILES;
    const runtimeMember: NatsRuntimeMember = {
        name: `${name}-${node.index}`,
        member: pulumi.all([published.publicKey, endpoint, meshNode.instance.id]).apply(([publicKey, wgEndpoint, instanceId]): MeshMember =>
            ({ name: node.hostname, address: node.wgAddress, publicKey, endpoint: wgEndpoint, instanceId })),
        certificates: pulumi.all([credentials.routeCa.certPem, route, credentials.clientCa.certPem, server]).apply(([routeCaPem, routePem, clientCaPem, serverPem]): Record<string, string> =>
            ({ [tlsFile.routeCa]: routeCaPem, [tlsFile.routeCert]: routePem, [tlsFile.clientCa]: clientCaPem, [tlsFile.serverCert]: serverPem })),
        routes: natsRouteAddresses(node, input.nodes),
    };
    return { meshNode, runtimeMember };
}

/**
 * The node's user-data: only what never changes for this node (its name,
 * its address, the route and system account passwords, the agent's read-only key), so renewing
 * certificates or changing another node replaces nothing.
 */
function nodeCloudConfig(node: NatsNode, profiles: NodeCertProfiles, input: NatsMembersInput, shared: SharedNodeFiles): pulumi.Output<string> {
    const { hosting, servers } = input;
    const layout = NATS_NODE_LAYOUT;
    const address = `${node.wgAddress}/${servers.subnet.split("/")[1]}`;
    const interfaceSection = wgInterfaceSection({ address, listenPort: NATS_WG_LISTEN_PORT });
    const owner = `${layout.user}:${layout.group}`;
    const bootstrapScript = renderNodeBootstrapScript({
        node: node.hostname,
        publishPutUrl: PUBLISH_URL_PLACEHOLDER,
        listenPort: NATS_WG_LISTEN_PORT,
        address,
        subnet: servers.subnet,
        interfaceSection,
        certificateRequests: [
            { name: "route", keyPath: natsTlsPath(layout, "routeKey"), owner, requestConfig: opensslRequestConfig(profiles.route) },
            { name: "server", keyPath: natsTlsPath(layout, "serverKey"), owner, requestConfig: opensslRequestConfig(profiles.server) },
        ],
    });
    const runtime = hosting.objectStore.runtime;
    return pulumi
        .all([runtime.endpoint, runtime.region, runtime.bucket, input.credentials.routePassword, input.credentials.systemPassword])
        .apply(([endpoint, region, bucket, clusterPassword, systemPassword]) =>
            renderNatsCloudConfig({
                node, layout, unit: shared.unit, prepareScript: shared.prepareScript, bootstrapScript,
                agent: agentFiles({
                    node: node.hostname, endpoint, region, bucket,
                    key: desiredStateKey(hosting.naming.stack, node.hostname),
                    wgAddress: address,
                    wgListenPort: NATS_WG_LISTEN_PORT,
                    interfaceSection,
                    nats: { ...NATS_NODE_AGENT, monitorPort: node.ports.monitor },
                }, AGENT_KEY_PLACEHOLDER),
                files: {
                    natsConf: renderNatsConf({ clusterName: servers.clusterName, node, layout, clientHost: "0.0.0.0", jetstream: servers.jetstream }),
                    clusterSecrets: renderNatsClusterSecrets({ password: clusterPassword }),
                    routePassword: clusterPassword,
                    systemAccount: renderNatsSystemAccount({ password: systemPassword }),
                },
            }),
        );
}
