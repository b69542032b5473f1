/** Summary statistics for the benches, one home for each definition. */

/** The nearest-rank percentile `p` (0-100) of `samples` (any order): a value that was measured. */
export function percentile(samples: number[], p: number): number {
    const sorted = [...samples].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The median of `samples` (any order), the mean of the two middle values when there is an even number. */
export function median(samples: number[]): number {
    const sorted = [...samples].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
