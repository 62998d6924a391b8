// A search thread: holds its share of a group's shards (see planParts: each segment on one thread
// of the node) and answers searches, so hnswlib's synchronous searches never block the event loop
// that routes requests. Plain JavaScript loading the TypeScript engine through tsx, which worker
// threads do not inherit from the parent. Tasks: see search-tasks.ts.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { openSearchTasks } = await import('./search-tasks.ts');
const tasks = openSearchTasks(workerData.indexDir, workerData.shards, workerData.parts);

export default function handle(task) {
  return tasks.run(task);
}
