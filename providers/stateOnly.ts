/**
 * read() for resources whose truth is their Pulumi state (a signature, a
 * poll's result, a deleted-on-purpose object): refresh keeps the state, and
 * `pulumi import` is refused, since there is nothing outside to read back.
 * Captured by value into serialized providers: plain function only.
 */
export function readFromState<T>(what: string): (id: string, props?: T) => Promise<{ id: string; props: T }> {
    return async (id, props) => {
        if (props === undefined) throw new Error(`a ${what} cannot be imported: it exists only in the stack's state`);
        return { id, props };
    };
}
