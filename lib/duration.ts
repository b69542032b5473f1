/** How the deploy's waits write a duration in their progress lines and errors: seconds, one decimal. Pure: serialized providers capture it. */
export function formatSeconds(ms: number): string {
    return `${(ms / 1000).toFixed(1)}s`;
}
