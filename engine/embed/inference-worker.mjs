// One ONNX Runtime session on its own thread. onnxruntime-node runs inference synchronously on
// the calling thread, so a session on the main thread would stop tile reading and preprocessing
// dispatch for the whole of each batch. Plain JavaScript: worker threads load it without a
// TypeScript loader. Messages: { id, kind: 'open' | 'run' | 'release', ... } → { id, ok, ... }.
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

let session;

async function handle(message) {
  switch (message.kind) {
    case 'open': {
      session = await ort.InferenceSession.create(workerData.onnxPath, workerData.options);
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        inputMetadata: session.inputMetadata.map((meta) => ({ name: meta.name, isTensor: meta.isTensor, type: meta.type, shape: meta.shape })),
      };
    }
    case 'run': {
      // ONNX Runtime refuses views of shared memory: copy a shared batch once, here, off the main thread.
      const data = message.data.buffer instanceof SharedArrayBuffer ? Float32Array.from(message.data) : message.data;
      const feeds = { [message.input]: new ort.Tensor('float32', data, message.dims) };
      const result = await session.run(feeds, [message.output]);
      const tensor = result[message.output];
      return { type: tensor.type, dims: tensor.dims, data: tensor.data };
    }
    case 'release':
      await session?.release();
      session = undefined;
      return {};
    default:
      throw new Error(`unknown message ${message.kind}`);
  }
}

parentPort.on('message', async (message) => {
  try {
    const result = await handle(message);
    const transfer = result.data?.buffer ? [result.data.buffer] : [];
    parentPort.postMessage({ id: message.id, ok: true, result }, transfer);
  } catch (error) {
    parentPort.postMessage({ id: message.id, ok: false, message: String(error?.message ?? error) });
  }
});
