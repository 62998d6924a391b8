"""Export a pathology tile encoder to ONNX for Tessera.

Run where you have the weights (Tessera never downloads them), with PyTorch >= 2.1 and timm or
transformers installed, then install the file with `npx tessera models add FILE.onnx --preset NAME`.

    python models/export_onnx.py uni --weights pytorch_model.bin --out uni.onnx [--fp16] [--opset 17]
    python models/export_onnx.py phikon-v2 --hf owkin/phikon-v2 --out phikon-v2.onnx

The exported graph takes "input" float32 [batch, 3, S, S] (already normalized, RGB) with a dynamic
batch axis, and outputs either "embedding" [batch, D] (pooled here) or "tokens" [batch, T, D]
(Tessera pools: class token, or class token + mean of patch tokens), matching models/presets.ts.
With --fp16 the weights and activations are half precision inside the graph, but the input and
output stay float32 (Tessera feeds and reads float32); use it for GPU inference.
"""
import argparse

import torch

# name: (builder, output kind, input size)
TIMM = {
    "uni": ("vit_large_patch16_224", dict(img_size=224, patch_size=16, init_values=1e-5, num_classes=0, dynamic_img_size=True), 224),
    "h-optimus-0": ("vit_giant_patch14_reg4_dinov2", dict(img_size=224, num_classes=0, init_values=1e-5, dynamic_img_size=False), 224),
    "h-optimus-1": ("vit_giant_patch14_reg4_dinov2", dict(img_size=224, num_classes=0, init_values=1e-5, dynamic_img_size=False), 224),
    "gigapath-tile": ("vit_giant_patch14_dinov2", dict(img_size=224, num_classes=0, init_values=1e-5), 224),
    "conch-v1.5": ("vit_large_patch16_224", dict(img_size=448, num_classes=0, init_values=1e-5), 448),
}


class Pooled(torch.nn.Module):
    """A timm model with num_classes=0 already returns the pooled class token: [N, D]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


class Tokens(torch.nn.Module):
    """All tokens [N, T, D], for Virchow2 (class ‖ mean of patches) and Phikon-v2 (class)."""

    def __init__(self, model, hf=False):
        super().__init__()
        self.model = model
        self.hf = hf

    def forward(self, x):
        if self.hf:
            return self.model(pixel_values=x).last_hidden_state
        return self.model.forward_features(x)


def build(name, args):
    if name in TIMM:
        import timm

        arch, kwargs, size = TIMM[name]
        model = timm.create_model(arch, pretrained=False, **kwargs)
        if args.weights:
            model.load_state_dict(torch.load(args.weights, map_location="cpu"), strict=True)
        return Pooled(model), "embedding", size
    if name == "uni2-h":
        import timm
        from timm.layers import SwiGLUPacked

        model = timm.create_model("vit_giant_patch14_224", pretrained=False, img_size=224, patch_size=14, depth=24, num_heads=24,
                                  init_values=1e-5, embed_dim=1536, mlp_ratio=2.66667 * 2, num_classes=0, no_embed_class=True,
                                  mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU, reg_tokens=8, dynamic_img_size=True)
        if args.weights:
            model.load_state_dict(torch.load(args.weights, map_location="cpu"), strict=True)
        return Pooled(model), "embedding", 224
    if name == "virchow2":
        import timm
        from timm.layers import SwiGLUPacked

        model = timm.create_model("vit_huge_patch14_224", img_size=224, init_values=1e-5, num_classes=0, mlp_ratio=5.3375,
                                  global_pool="", dynamic_img_size=True, mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU,
                                  reg_tokens=4, pretrained=False)
        if args.weights:
            model.load_state_dict(torch.load(args.weights, map_location="cpu"), strict=True)
        return Tokens(model), "tokens", 224
    if name == "phikon-v2":
        from transformers import AutoModel

        return Tokens(AutoModel.from_pretrained(args.hf or "owkin/phikon-v2", local_files_only=True), hf=True), "tokens", 224
    if name == "ctranspath":
        raise SystemExit("ctranspath: build the model with the TransPath repository's ctranspath() and load its weights, "
                         "then call export(model, 'embedding', 224, args) from this file")
    raise SystemExit(f"unknown model {name}")


def export(module, output, size, args):
    module.eval()
    if args.fp16:
        module = module.half()

        class CastWrap(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x.half()).float()

        module = CastWrap(module)
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(
        module, dummy, args.out, input_names=["input"], output_names=[output],
        dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}}, opset_version=args.opset, do_constant_folding=True,
    )
    print(f"wrote {args.out}: input [batch, 3, {size}, {size}] → {output}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted([*TIMM, "uni2-h", "virchow2", "phikon-v2", "ctranspath"]))
    parser.add_argument("--weights", help="state dict (.bin/.pth) for timm models")
    parser.add_argument("--hf", help="local Hugging Face folder or cached id (transformers models)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--fp16", action="store_true", help="half precision inside the graph (GPU)")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    module, output, size = build(args.model, args)
    export(module, output, size, args)


if __name__ == "__main__":
    main()
