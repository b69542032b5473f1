/**
 * meshstack: reads the stack config and composes the components. Everything
 * else lives in components/ (resources), cloudinit/ (rendering) and
 * providers/ (dynamic providers).
 */
import * as pulumi from "@pulumi/pulumi";
import { ObjectStore } from "./components/objectStore";
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

export const bucketName = store.bucketName;
export const bucketEndpoint = store.endpoint;
