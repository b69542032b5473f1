/**
 * meshstack: reads the stack config and composes the components. Everything
 * else lives in components/ (resources), cloudinit/ (rendering) and
 * providers/ (dynamic providers).
 */
import * as pulumi from "@pulumi/pulumi";
import { GoldenGuests } from "./components/goldenGuests";
import { NatsCluster } from "./components/natsCluster";
import { ObjectStore } from "./components/objectStore";
import { WgCache } from "./components/wgCache";
import { MeshRuntime } from "./components/meshRuntime";
import { environmentOf, resourceTags } from "./lib/environments";
import { requireStackConfig, s3AgentCredentialsFromEnv, s3CredentialsFromEnv } from "./lib/pulumiConfig";
import { meshTopology } from "./lib/topology";

const config = requireStackConfig();
const naming = { project: pulumi.getProject(), stack: pulumi.getStack() };
const environment = environmentOf(naming.stack);
const tags = resourceTags(naming.project, environment);

const store = new ObjectStore("rendezvous", {
    naming,
    kind: config.objectStore.kind,
    region: config.objectStore.region,
    endpoint: config.objectStore.endpoint,
    bootstrapPrefix: config.objectStore.bootstrapPrefix,
    bootstrapObjectExpiryDays: config.objectStore.bootstrapObjectExpiryDays,
    tags,
    protect: environment.protectState,
    s3Credentials: config.objectStore.kind === "s3" ? s3CredentialsFromEnv(process.env) : undefined,
    s3AgentCredentials: config.objectStore.kind === "s3" ? s3AgentCredentialsFromEnv(process.env) : undefined,
    agentKeyGeneration: config.objectStore.agentKeyGeneration,
});

// Who is who in the mesh, worked out once and handed to every component.
const topology = meshTopology({
    hubInterfaceAddress: config.wgCache.address,
    natsNodeCount: config.nats.nodeCount,
    clusterName: config.nats.clusterName,
    dnsDomain: config.nats.dnsDomain,
});

// The hub's name in the mesh: its component name, and the key of its desired state.
const hubName = "wg-cache";
const wgCache = new WgCache(hubName, {
    naming,
    region: config.region,
    instanceType: config.wgCache.instanceType,
    image: config.wgCache.image,
    listenPort: config.wgCache.listenPort,
    address: topology.hub.interfaceAddress,
    subnet: topology.subnet,
    pubkeyPollTimeoutSeconds: config.wgCache.pubkeyPollTimeoutSeconds,
    authorizedKeys: config.access.sshAuthorizedKeys,
    breakGlassSshCidrs: config.access.breakGlassSshCidrs,
    objectStore: store,
    bootstrap: config.bootstrap,
    tags,
    acceptedRebuilds: config.lifecycle.acceptRebuilds,
});

const nats = new NatsCluster("nats", {
    naming,
    region: config.region,
    instanceType: config.nats.instanceType,
    image: config.nats.image,
    nodeImages: config.nats.nodeImages,
    topology,
    nodes: topology.nats,
    publishTimeoutSeconds: config.wgCache.pubkeyPollTimeoutSeconds,
    clientCidrs: config.nats.clientCidrs,
    dnsDomain: config.nats.dnsDomain,
    authorizedKeys: config.access.sshAuthorizedKeys,
    breakGlassSshCidrs: config.access.breakGlassSshCidrs,
    objectStore: store,
    bootstrap: config.bootstrap,
    clientCa: config.nats.clientCa,
    tags,
    protect: environment.protectState,
    controlPlaneKv: config.nats.kvBucket ? { bucket: config.nats.kvBucket, replicas: config.nats.kvReplicas } : undefined,
    rejoinTimeoutSeconds: config.nats.rejoinTimeoutSeconds,
    acceptedRebuilds: config.lifecycle.acceptRebuilds,
});

// What changes after first boot (peers, certificates, routes, operators, SSH
// keys, the nats-server release) reaches the running nodes through here, never through their user-data.
const mesh = new MeshRuntime("mesh", {
    naming,
    objectStore: store,
    subnet: topology.subnet,
    names: { hub: hubName, nats: nats.hostnames },
    hub: wgCache.member,
    nats: nats.runtimeMembers,
    operators: config.wgCache.operatorPeers,
    authorizedKeys: config.access.sshAuthorizedKeys,
    natsServer: config.nats.serverRelease,
    after: nats.scaleDown ? [nats.scaleDown] : [],
});

// Last: once no member can reach a node a lower natsNodeCount removed, the JetStream meta group is the members alone.
nats.settleMetaGroup(mesh.written);

// Off unless meshstack:proxmoxGuests lists guests. Guests hold state: protected where the environment protects state (children inherit protect).
const goldenGuests = config.proxmox ? new GoldenGuests("pve", { proxmox: config.proxmox }, { protect: environment.protectState }) : undefined;

export const bucketName = store.access.bucket;
export const bucketEndpoint = store.access.endpoint;
export const wgCachePublicKey = wgCache.publicKey;
export const wgCacheEndpoint = wgCache.endpoint;
export const wgCachePeerSection = wgCache.peerSection;
export const natsClientUrls = nats.clientUrls;
export const natsServiceName = nats.serviceName;
export const natsClientCaCertPem = nats.clientCaCertPem;
export const bootstrapDelivery = {
    [hubName]: wgCache.node.bootstrapDelivery,
    ...Object.fromEntries(nats.nodes.map((node, i) => [nats.hostnames[i], node.bootstrapDelivery])),
};
export const desiredStateDigests = mesh.desiredStateDigests;
export const proxmoxGuests = goldenGuests?.summary ?? {};
