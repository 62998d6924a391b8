/**
 * Presets: the preprocessing and output of pathology foundation models as exported by
 * models/export_onnx.py (input "input" [N, 3, S, S]; output "embedding" [N, D] already pooled, or
 * "tokens" [N, T, D] where Tessera pools). Values follow each model's card; the weights are
 * never downloaded by Tessera: users with access export them to ONNX.
 */
import type { ModelManifest } from './manifest.js';

export type Preset = Omit<ModelManifest, 'id' | 'version' | 'file' | 'sha256'>;

const IMAGENET = { mean: [0.485, 0.456, 0.406] as [number, number, number], std: [0.229, 0.224, 0.225] as [number, number, number] };
// H-optimus models are normalized with statistics of their own training tiles.
const HOPTIMUS = { mean: [0.707223, 0.578729, 0.703617] as [number, number, number], std: [0.211883, 0.230117, 0.177517] as [number, number, number] };

const base = { input: 'input', channelOrder: 'RGB', metric: 'cosine', output: 'embedding', pooling: 'none', inputSize: 224 } as const;

export const PRESETS: Record<string, Preset> = {
  uni: { ...base, ...IMAGENET, dimension: 1024, license: 'CC-BY-NC-ND-4.0', source: 'MahmoodLab/UNI (ViT-L/16, class token)' },
  'uni2-h': { ...base, ...IMAGENET, dimension: 1536, license: 'CC-BY-NC-ND-4.0', source: 'MahmoodLab/UNI2-h (ViT-H/14, 8 register tokens, class token)' },
  virchow2: {
    ...base,
    ...IMAGENET,
    output: 'tokens',
    pooling: 'cls+mean',
    patchTokensFrom: 5,
    dimension: 2560,
    license: 'CC-BY-NC-ND-4.0',
    source: 'paige-ai/Virchow2 (ViT-H/14, 4 register tokens): class token ‖ mean of patch tokens',
  },
  'phikon-v2': { ...base, ...IMAGENET, output: 'tokens', pooling: 'cls', dimension: 1024, license: 'Owkin non-commercial', source: 'owkin/phikon-v2 (ViT-L/16 DINOv2, class token of last_hidden_state)' },
  'h-optimus-0': { ...base, ...HOPTIMUS, dimension: 1536, license: 'Apache-2.0', source: 'bioptimus/H-optimus-0 (ViT-g/14, class token)' },
  'h-optimus-1': { ...base, ...HOPTIMUS, dimension: 1536, license: 'see the model card (bioptimus/H-optimus-1)', source: 'bioptimus/H-optimus-1 (ViT-g/14, class token)' },
  'conch-v1.5': { ...base, ...IMAGENET, inputSize: 448, dimension: 768, license: 'CC-BY-NC-ND-4.0', source: 'MahmoodLab/conchv1_5 vision encoder (ViT-L/16 at 448 px, from TITAN)' },
  'gigapath-tile': { ...base, ...IMAGENET, resizeTo: 256, dimension: 1536, license: 'Apache-2.0', source: 'prov-gigapath/prov-gigapath tile encoder (ViT-g/14; resize 256, centre crop 224)' },
  ctranspath: { ...base, ...IMAGENET, dimension: 768, license: 'GPL-3.0', source: 'Xiyue-Wang/TransPath CTransPath (Swin-T with a convolutional stem)' },
};
