/**
 * meshstack: reads the stack config and composes the components. Everything
 * else lives in components/ (resources), cloudinit/ (rendering) and
 * providers/ (dynamic providers).
 */
import * as pulumi from "@pulumi/pulumi";
import { ObjectStore } from "./components/objectStore";
import { WgCache } from "./components/wgCache";
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

const wgCache = new WgCache("wg-cache", {
    naming,
    region: config.region,
    instanceType: config.wgCache.instanceType,
    image: config.wgCache.image,
    listenPort: config.wgCache.listenPort,
    address: config.wgCache.address,
    pubkeyPollTimeoutSeconds: config.wgCache.pubkeyPollTimeoutSeconds,
    authorizedKeys: config.access.sshAuthorizedKeys,
    breakGlassSshCidrs: config.access.breakGlassSshCidrs,
    objectStore: store,
    bootstrap: config.bootstrap,
});

export const bucketName = store.bucketName;
export const bucketEndpoint = store.endpoint;
export const wgCachePublicKey = wgCache.publicKey;
export const wgCacheEndpoint = wgCache.endpoint;
export const wgCachePeerSection = wgCache.peerSection;
export const bootstrapDelivery = {
    "wg-cache": wgCache.node.bootstrapDelivery,
};
