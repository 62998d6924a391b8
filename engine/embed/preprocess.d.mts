export interface PreprocessSpec {
  inputSize: number;
  resizeTo?: number;
  channelOrder: 'RGB' | 'BGR';
  mean: readonly number[];
  std: readonly number[];
}
export function preprocessTile(task: { pixels: Uint8Array; width: number; height: number; spec: PreprocessSpec; out?: Float32Array }): Promise<Float32Array>;
export default function preprocessTask(task: { pixels: Uint8Array; width: number; height: number; spec: PreprocessSpec; batch: SharedArrayBuffer; offset: number; length: number }): Promise<void>;
