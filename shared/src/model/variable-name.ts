// tf.Variable names are global to the tfjs engine: a second model in the same process (a coordinator serving several
// projects, issue 21) cannot register `classifier.weight` or `…query.lora_A` again. The first holder of a name keeps
// it (a site's one model, and its gradient worker, see the names they always had); later ones get a numbered prefix.
// Names are only keys within one model (its gradients and optimizer moments), never read across models.

import * as tf from '@tensorflow/tfjs';

let taken = 0;

/** `name` if no live variable holds it, else `copyN/<name>` for the next free N. */
export function freeVariableName(name: string): string {
  const live = tf.engine().registeredVariables;
  if (!Object.hasOwn(live, name)) return name;
  let candidate: string;
  do candidate = `copy${++taken}/${name}`;
  while (Object.hasOwn(live, candidate));
  return candidate;
}
