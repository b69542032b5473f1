/**
 * The one place that reads Pulumi's runtime config and the environment; the
 * rest of the program works on the typed StackConfig.
 */
import * as pulumi from "@pulumi/pulumi";
import type { S3KeyPair } from "../providers/s3Args";
import { formatConfigErrors, parseStackConfig, RawConfig, StackConfig } from "./config";

// Exported by the runtime's config module but missing from its typings.
const isConfigSecret: (key: string) => boolean = (pulumi.runtime as unknown as { isConfigSecret: (k: string) => boolean }).isConfigSecret;

export function readRawConfig(): RawConfig {
    const values = pulumi.runtime.allConfig();
    return { values, secretKeys: new Set(Object.keys(values).filter((k) => isConfigSecret(k))) };
}

/** Parses the stack's config or throws one error listing every problem, before any resource exists. */
export function requireStackConfig(): StackConfig {
    const parsed = parseStackConfig(readRawConfig(), pulumi.getStack());
    if (!parsed.ok) throw new Error(formatConfigErrors(parsed.errors, parsed.warnings));
    for (const warning of parsed.warnings) pulumi.log.warn(`${warning.key}: ${warning.message}`);
    return parsed.value;
}

/** The key pair an s3-kind object store is reached with, from the AWS SDK's usual variables. */
export function s3CredentialsFromEnv(env: NodeJS.ProcessEnv): S3KeyPair {
    const missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].filter((name) => !env[name]);
    if (missing.length) {
        throw new Error(`meshstack:objectStoreKind is s3, so ${missing.join(" and ")} must be set in the environment (a key scoped to the bucket)`);
    }
    return { accessKeyId: pulumi.secret(env.AWS_ACCESS_KEY_ID!), secretAccessKey: pulumi.secret(env.AWS_SECRET_ACCESS_KEY!) };
}

/** The agents' read-only key pair for an s3-kind store's runtime bucket. */
export function s3AgentCredentialsFromEnv(env: NodeJS.ProcessEnv): S3KeyPair {
    const names = ["MESHSTACK_AGENT_ACCESS_KEY_ID", "MESHSTACK_AGENT_SECRET_ACCESS_KEY"];
    const missing = names.filter((name) => !env[name]);
    if (missing.length) {
        throw new Error(`meshstack:objectStoreKind is s3, so ${missing.join(" and ")} must be set in the environment (a key that can only read the runtime bucket)`);
    }
    return { accessKeyId: pulumi.secret(env.MESHSTACK_AGENT_ACCESS_KEY_ID!), secretAccessKey: pulumi.secret(env.MESHSTACK_AGENT_SECRET_ACCESS_KEY!) };
}
