/**
 * A fake clock for the deploy's waits, which take their clock, sleep and log
 * as dependencies: sleeping advances the clock at once and is recorded, and
 * every progress line is kept, so a wait of minutes runs in no time.
 */
export function fakeClock() {
    let now = 0;
    const lines: string[] = [];
    const sleeps: number[] = [];
    return {
        lines,
        sleeps,
        now: () => now,
        sleep: async (ms: number) => {
            sleeps.push(ms);
            now += ms;
        },
        log: (line: string) => lines.push(line),
    };
}

/** The store's answer for a report not written yet. */
export const NO_REPORT_YET = { status: 404, body: Buffer.from("<Code>NoSuchKey</Code>") };
