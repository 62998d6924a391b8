/**
 * Tiny ONNX models built in the test, so that preprocessing, pooling and validation are checked
 * against exact expected numbers, with no weights to download.
 */
import { writeFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type Node = NonNullable<Parameters<typeof onnx.NodeProto.create>[0]>;
type ValueInfo = ReturnType<typeof valueInfo>;
type Tensor = NonNullable<Parameters<typeof onnx.TensorProto.create>[0]>;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

type Dim = number | string;

function valueInfo(name: string, dims: Dim[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: FLOAT,
        shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }),
      }),
    }),
  });
}

function save(path: string, nodes: Node[], inputs: ValueInfo[], outputs: ValueInfo[], initializers: Tensor[] = []): string {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'tessera-tests',
    opsetImport: [{ domain: '', version: 13 }],
    graph: onnx.GraphProto.create({ name: 'tiny', node: nodes, input: inputs, output: outputs, initializer: initializers }),
  });
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
  return path;
}

/** input [N, 3, S, S] → "embedding" [N, 3]: the mean of each input channel. */
export function channelMeanModel(path: string, size: number | 'dynamic' = 4): string {
  const side: Dim = size === 'dynamic' ? 'side' : size;
  return save(
    path,
    [onnx.NodeProto.create({ opType: 'ReduceMean', input: ['input'], output: ['embedding'], attribute: [{ name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [2, 3] }, { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] })],
    [valueInfo('input', ['batch', 3, side, side])],
    [valueInfo('embedding', ['batch', 3])],
  );
}

/** input [N, 3, S, S] → "tokens" [N, S·S, 3]: one token per pixel, its three channel values. */
export function pixelTokensModel(path: string, size = 4): string {
  const shape = onnx.TensorProto.create({ name: 'shape', dataType: onnx.TensorProto.DataType.INT64, dims: [3], int64Data: [0, 3, size * size] });
  return save(
    path,
    [
      onnx.NodeProto.create({ opType: 'Reshape', input: ['input', 'shape'], output: ['flat'] }),
      onnx.NodeProto.create({ opType: 'Transpose', input: ['flat'], output: ['tokens'], attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 2, 1] }] }),
    ],
    [valueInfo('input', ['batch', 3, size, size])],
    [valueInfo('tokens', ['batch', size * size, 3])],
    [shape],
  );
}
