/** Durations of the real server, in milliseconds before scaling. */
export const PVE_TIMINGS = {
    /** pveproxy delays every failed authentication by 3 s. */
    authFailureDelayMs: 3000,
    /** lock_file waits 10 s for the config lock. */
    configLockWaitMs: 10_000,
    /** How long a just-dispatched task is unknown to tasks/{upid}/status. */
    taskInvisibleMs: 600,
    restoreMs: 4000,
    resizeMs: 3000,
    startMs: 2000,
    stopMs: 1000,
    destroyMs: 1000,
    /** After start, how long until the guest reports an IPv4 address. */
    dhcpMs: 1500,
};

export type PveTimings = typeof PVE_TIMINGS;
