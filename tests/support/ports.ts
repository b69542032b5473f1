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

/** Polls `probe` until it returns true or the deadline passes. */
export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (await probe().catch(() => false)) return;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, intervalMs));
    }
}
