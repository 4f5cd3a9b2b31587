// `hello`, in JavaScript: any JSON value `v` → `{"hello": v}`. No I/O: the smallest possible task.
import { task } from '../../sdk-js/ignareo.js';

export const run = task((input) => ({ hello: input }));
