import * as net from "net";

/** A free loopback TCP port, chosen by the kernel. */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address() as net.AddressInfo;
            server.close(() => resolve(port));
        });
    });
}

/** Polls `probe` until it returns true or the deadline passes; a timeout names the probe's last error, if it threw. */
export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = "";
    for (;;) {
        const done = await probe().catch((err: unknown) => {
            lastError = err instanceof Error ? err.message : String(err);
            return false;
        });
        if (done) return;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}`);
        await new Promise((r) => setTimeout(r, intervalMs));
    }
}
