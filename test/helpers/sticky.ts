// Sticky-header values that the assignment sends to a given variant: forced requests
// (x-roundhouse-variant) no longer count toward rollbacks, so tests reach a canary as real
// traffic does.
import { pick, pointOf, type WeightedVariant } from "../../src/traffic/assignment.ts";

export function usersOn(experiment: string, variants: readonly WeightedVariant[], want: string, n: number): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < n && i < 100_000; i++) {
    const user = `user-${want}-${i}`;
    if (pick(variants, pointOf(experiment, user)) === want) users.push(user);
  }
  return users;
}
