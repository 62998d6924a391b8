// A segment builder thread: plain JavaScript loading the TypeScript engine through tsx, which
// worker threads do not inherit from the parent. Task: see segment-build-task.ts.
import { register } from 'tsx/esm/api';

register();
const { buildSegment } = await import('./segment-build-task.ts');

export default function handle(task) {
  return buildSegment(task);
}
