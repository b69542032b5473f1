/**
 * The provider host's own contract: an answer reaches the test only after
 * the progress lines the provider printed before answering. The lines and
 * the answers come on separate pipes, and under load (CI) an answer once
 * overtook a diff's drift line, so a test read the log as empty.
 */
import * as assert from "assert";
import { ProviderHost } from "./dynamicProviders";

/** A provider that prints `lines` lines (every tenth on stderr) in create(), then answers at once. */
const chattyProvider = (lines: number) => `exports.handler = () => ({
    async create() {
        for (let i = 0; i < ${lines}; i++) (i % 10 ? process.stdout : process.stderr).write("progress line " + i + "\\n");
        return { id: "chatty", outs: {} };
    },
});`;

describe("provider host: an answer comes after the lines printed before it", function () {
    this.timeout(60_000);

    it("holds the answer until every line the provider printed before answering has been read, stdout and stderr", async () => {
        const host = await ProviderHost.start(chattyProvider(20_000));
        try {
            for (let call = 1; call <= 3; call++) {
                await host.create({});
                assert.strictEqual(host.logs.length, 20_000 * call, `after call ${call}`);
            }
            assert.ok(host.logs.includes("progress line 0") && host.logs.includes("progress line 19999"));
        } finally {
            await host.close();
        }
    });
});
