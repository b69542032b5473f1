/**
 * The config report: problems and warnings named by fully qualified key, and
 * the one text an operator reads. Errors are values, never thrown, so a bad
 * stack gets every problem in one report instead of one `pulumi up` per mistake.
 */
export const CONFIG_NAMESPACE = "meshstack";

export interface ConfigError {
    /** Fully qualified key, e.g. `meshstack:natsNodeCount`. */
    key: string;
    /** The offending raw value as the operator wrote it (redacted for secrets). */
    value?: string;
    /** What is wrong and what is allowed. */
    message: string;
}

/** What is probably wrong but may be right; reported, never refused. */
export interface ConfigWarning {
    key: string;
    message: string;
}

export type Result<T> = { ok: true; value: T; warnings: ConfigWarning[] } | { ok: false; errors: ConfigError[]; warnings: ConfigWarning[] };

export function qualify(key: string): string {
    return `${CONFIG_NAMESPACE}:${key}`;
}

/** One line per problem, for the CLI and for the error `pulumi up` shows; warnings follow, so none is lost with the refusal. */
export function formatConfigErrors(errors: ConfigError[], warnings: ConfigWarning[] = []): string {
    const lines = errors.map((e) => `  - ${e.key}${e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : ""}: ${e.message}`);
    const report = `invalid stack configuration (${errors.length} problem${errors.length === 1 ? "" : "s"}):\n${lines.join("\n")}`;
    return warnings.length ? `${report}\n${formatConfigWarnings(warnings)}` : report;
}

export function formatConfigWarnings(warnings: ConfigWarning[]): string {
    return `stack configuration warning${warnings.length === 1 ? "" : "s"} (${warnings.length}):\n${warnings.map((w) => `  - ${w.key}: ${w.message}`).join("\n")}`;
}
