/**
 * Who a send reaches: one value instead of one method per form, so a lifetime manager (in memory
 * or a backplane) implements a single `send`.
 */
export type SendTarget =
  | { readonly kind: "all"; readonly excluded?: readonly string[] }
  | { readonly kind: "connection"; readonly connectionId: string }
  | { readonly kind: "connections"; readonly connectionIds: readonly string[] }
  | { readonly kind: "group"; readonly group: string; readonly excluded?: readonly string[] }
  | { readonly kind: "groups"; readonly groups: readonly string[]; readonly excluded?: readonly string[] }
  | { readonly kind: "user"; readonly userId: string }
  | { readonly kind: "users"; readonly userIds: readonly string[] };

/** The one target value shared by every `clients.all` send. */
export const ALL: SendTarget = Object.freeze({ kind: "all" });
