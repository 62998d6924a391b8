/**
 * A model manifest: everything Tessera needs to feed an ONNX tile encoder and read its output.
 * Parsed once from JSON into a typed, validated object. This folder imports nothing of Tessera's.
 */

export type ChannelOrder = 'RGB' | 'BGR';
/**
 * How the output tensor becomes one vector per tile:
 * - `none`: the output is already [N, D];
 * - `cls`: the output is tokens [N, T, D]; take token 0 (the class token);
 * - `cls+mean`: concatenate the class token and the mean of the patch tokens (tokens from
 *   `patchTokensFrom` on, skipping register tokens), as Virchow2 recommends: 2·D.
 */
export type Pooling = 'none' | 'cls' | 'cls+mean';

export interface ModelManifest {
  id: string;
  version: string;
  /** ONNX file name, relative to the manifest. */
  file: string;
  sha256: string;
  /** Input tensor name. */
  input: string;
  /** Square input side in pixels. */
  inputSize: number;
  /** Resize tiles to this side before a centre crop to inputSize (default: resize straight to inputSize). */
  resizeTo?: number;
  channelOrder: ChannelOrder;
  /** Per-channel mean and std on 0–1 pixel values, in the model's channel order. */
  mean: [number, number, number];
  std: [number, number, number];
  /** Output tensor name. */
  output: string;
  pooling: Pooling;
  /** First patch token for `cls+mean` (1 + number of register tokens). */
  patchTokensFrom?: number;
  /** Length of the final embedding. */
  dimension: number;
  metric: 'cosine';
  license: string;
  source: string;
  description?: string;
  /**
   * Test-time augmentation: `d8` embeds the 8 rotations and flips of each model input and keeps
   * the mean of their unit vectors, renormalized (8× the inference). Absent: the input as it is.
   */
  augment?: 'd8';
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Validates a parsed JSON value as a manifest; `where` names it in error messages. */
export function parseManifest(value: unknown, where: string): ModelManifest {
  const fail = (reason: string): never => {
    throw new ManifestError(`${where}: ${reason}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('a manifest must be a JSON object');
  const record = value as Record<string, unknown>;
  const text = (key: string, optional = false): string | undefined => {
    const field = record[key];
    if (field === undefined && optional) return undefined;
    if (typeof field !== 'string' || field.length === 0) fail(`"${key}" must be a non-empty string`);
    return field as string;
  };
  const positiveInteger = (key: string, optional = false): number | undefined => {
    const field = record[key];
    if (field === undefined && optional) return undefined;
    if (!Number.isInteger(field) || (field as number) <= 0) fail(`"${key}" must be a positive integer, got ${JSON.stringify(field)}`);
    return field as number;
  };
  const triple = (key: string, positive: boolean): [number, number, number] => {
    const field = record[key];
    if (!Array.isArray(field) || field.length !== 3 || field.some((v) => typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0))) {
      fail(`"${key}" must be three ${positive ? 'positive ' : ''}numbers, got ${JSON.stringify(field)}`);
    }
    return field as [number, number, number];
  };
  const id = text('id') as string;
  if (!ID_PATTERN.test(id)) fail(`"id" must be lower-case letters, digits, '.', '_' or '-', got "${id}"`);
  const channelOrder = record.channelOrder ?? 'RGB';
  if (channelOrder !== 'RGB' && channelOrder !== 'BGR') fail(`"channelOrder" must be "RGB" or "BGR", got ${JSON.stringify(channelOrder)}`);
  const pooling = record.pooling ?? 'none';
  if (pooling !== 'none' && pooling !== 'cls' && pooling !== 'cls+mean') fail(`"pooling" must be "none", "cls" or "cls+mean", got ${JSON.stringify(pooling)}`);
  const metric = record.metric ?? 'cosine';
  if (metric !== 'cosine') fail(`"metric" must be "cosine" (embeddings are L2-normalized), got ${JSON.stringify(metric)}`);
  const sha256 = text('sha256') as string;
  if (!/^[0-9a-f]{64}$/.test(sha256)) fail(`"sha256" must be 64 lower-case hex digits`);
  const manifest: ModelManifest = {
    id,
    version: text('version') as string,
    file: text('file') as string,
    sha256,
    input: text('input') as string,
    inputSize: positiveInteger('inputSize') as number,
    channelOrder: channelOrder as ChannelOrder,
    mean: triple('mean', false),
    std: triple('std', true),
    output: text('output') as string,
    pooling: pooling as Pooling,
    dimension: positiveInteger('dimension') as number,
    metric: 'cosine',
    license: text('license') as string,
    source: text('source') as string,
  };
  const resizeTo = positiveInteger('resizeTo', true);
  if (resizeTo !== undefined) {
    if (resizeTo < manifest.inputSize) fail(`"resizeTo" (${resizeTo}) must be at least "inputSize" (${manifest.inputSize})`);
    manifest.resizeTo = resizeTo;
  }
  const patchTokensFrom = positiveInteger('patchTokensFrom', true);
  if (patchTokensFrom !== undefined) manifest.patchTokensFrom = patchTokensFrom;
  const augment = record.augment;
  if (augment !== undefined && augment !== 'd8') fail(`"augment" must be "d8" or absent, got ${JSON.stringify(augment)}`);
  if (augment === 'd8') manifest.augment = 'd8';
  const description = text('description', true);
  if (description !== undefined) manifest.description = description;
  if (manifest.file.includes('/') || manifest.file.includes('\\')) fail(`"file" must be a file name beside the manifest, got "${manifest.file}"`);
  return manifest;
}
