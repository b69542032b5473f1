/**
 * Dynamic resources as the engine keeps them: inputs and outputs carry the
 * serialized provider (`__provider`), and a delete runs that provider text
 * from state in a fresh host, not the program's current one.
 */
import { ProviderHost } from "../tests/harness/dynamicProviders";
import { BoxResource } from "./state";

const DELETE_DEADLINE_MS = 60_000;

export function withoutProvider(values: Record<string, any>): Record<string, any> {
    const { __provider: _provider, ...rest } = values;
    return rest;
}

/**
 * Deletes one dynamic resource by the provider text kept in state, as the
 * engine does, configured with this `up`'s stack config (qualified keys) as
 * the engine configures it; a delete that waits on a VM already gone is cut
 * short. Resolves with why it failed, or undefined.
 */
export async function deleteDynamic(resource: BoxResource, caCertFile: string, stackConfig: Record<string, string> = {}): Promise<string | undefined> {
    let host: ProviderHost;
    try {
        host = await ProviderHost.start(resource.serializedProvider!, { NODE_EXTRA_CA_CERTS: caCertFile }, stackConfig);
    } catch (err) {
        return `its provider did not start: ${(err as Error).message}`;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
        const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${DELETE_DEADLINE_MS / 1000}s`)), DELETE_DEADLINE_MS);
        });
        await Promise.race([host.delete(resource.id, withoutProvider(resource.outputs)), deadline]);
        return undefined;
    } catch (err) {
        return (err as Error).message;
    } finally {
        clearTimeout(timer);
        await host.kill("SIGKILL");
        await host.close();
    }
}
