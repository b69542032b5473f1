/**
 * The lines code under test prints with console.log (the providers' progress
 * and retry lines), captured per test: call it in a describe; each test sees
 * only its own lines, and the real console.log is back after every test.
 */
export function captureConsoleLog(): { lines: string[] } {
    const captured = { lines: [] as string[] };
    let original: typeof console.log;
    beforeEach(() => {
        captured.lines = [];
        original = console.log;
        console.log = (line: string) => captured.lines.push(line);
    });
    afterEach(() => {
        console.log = original;
    });
    return captured;
}
