import * as pulumi from "@pulumi/pulumi";

/** The resolved value of an output under the mock runtime. */
export function resolve<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((done) => output.apply(done));
}

/** Whether an output is marked secret. */
export function isSecret(output: pulumi.Output<unknown>): Promise<boolean> {
    return (output as unknown as { isSecret: Promise<boolean> }).isSecret;
}
