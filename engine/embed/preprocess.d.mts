export interface PreprocessSpec {
  inputSize: number;
  resizeTo?: number;
  channelOrder: 'RGB' | 'BGR';
  mean: readonly number[];
  std: readonly number[];
}
export function preprocessTile(task: { pixels: Uint8Array; width: number; height: number; spec: PreprocessSpec }): Promise<Float32Array>;
export default function preprocessTask(task: { pixels: Uint8Array; width: number; height: number; spec: PreprocessSpec }): Promise<Float32Array>;
