/**
 * meshstack: reads the stack config and composes the components. Everything
 * else lives in components/ (resources), cloudinit/ (rendering) and
 * providers/ (dynamic providers).
 */
import * as pulumi from "@pulumi/pulumi";
import { natsNodes, natsWgAddresses } from "./cloudinit/natsTopology";
import { NatsCluster } from "./components/natsCluster";
import { ObjectStore } from "./components/objectStore";
import { WgCache } from "./components/wgCache";
import { WgSpokeKeys } from "./components/wgSpokeKeys";
import { requireStackConfig, s3CredentialsFromEnv } from "./lib/pulumiConfig";

const config = requireStackConfig();
const naming = { project: pulumi.getProject(), stack: pulumi.getStack() };

const store = new ObjectStore("rendezvous", {
    naming,
    kind: config.objectStore.kind,
    region: config.objectStore.region,
    endpoint: config.objectStore.endpoint,
    bootstrapPrefix: config.objectStore.bootstrapPrefix,
    bootstrapObjectExpiryDays: config.objectStore.bootstrapObjectExpiryDays,
    s3Credentials: config.objectStore.kind === "s3" ? s3CredentialsFromEnv(process.env) : undefined,
});

// The NATS nodes are the spokes of the WireGuard mesh. Their keys exist
// before either side, so the hub lists them from its first boot.
const natsSpokes = new WgSpokeKeys("nats-wg", {
    spokes: natsNodes({ clusterName: config.nats.clusterName, wgAddresses: natsWgAddresses(config.wgCache.address, config.nats.nodeCount) })
        .map((node) => ({ name: node.hostname, address: node.wgAddress })),
});

const wgCache = new WgCache("wg-cache", {
    naming,
    region: config.region,
    instanceType: config.wgCache.instanceType,
    image: config.wgCache.image,
    listenPort: config.wgCache.listenPort,
    address: config.wgCache.address,
    spokes: natsSpokes.peers,
    pubkeyPollTimeoutSeconds: config.wgCache.pubkeyPollTimeoutSeconds,
    authorizedKeys: config.access.sshAuthorizedKeys,
    breakGlassSshCidrs: config.access.breakGlassSshCidrs,
    objectStore: store,
    bootstrap: config.bootstrap,
});

const nats = new NatsCluster("nats", {
    naming,
    region: config.region,
    nodeCount: config.nats.nodeCount,
    instanceType: config.nats.instanceType,
    image: config.nats.image,
    clusterName: config.nats.clusterName,
    clientCidrs: config.nats.clientCidrs,
    wgCacheAddress: config.wgCache.address,
    wgKeys: natsSpokes.keys.map((key) => key.privateKey),
    wgHub: { publicKey: wgCache.publicKey, endpoint: wgCache.endpoint },
    dnsDomain: config.nats.dnsDomain,
    authorizedKeys: config.access.sshAuthorizedKeys,
    breakGlassSshCidrs: config.access.breakGlassSshCidrs,
    objectStore: store,
    bootstrap: config.bootstrap,
    clientCa: config.nats.clientCa,
    serverRelease: config.nats.serverRelease,
    controlPlaneKv: config.nats.kvBucket ? { bucket: config.nats.kvBucket, replicas: config.nats.kvReplicas } : undefined,
});

export const bucketName = store.bucketName;
export const bucketEndpoint = store.endpoint;
export const wgCachePublicKey = wgCache.publicKey;
export const wgCacheEndpoint = wgCache.endpoint;
export const wgCachePeerSection = wgCache.peerSection;
export const natsClientUrls = nats.clientUrls;
export const natsServiceName = nats.serviceName;
export const natsClientCaCertPem = nats.clientCaCertPem;
export const bootstrapDelivery = {
    "wg-cache": wgCache.node.bootstrapDelivery,
    ...Object.fromEntries(nats.nodes.map((node, i) => [nats.hostnames[i], node.bootstrapDelivery])),
};
