/**
 * What every command that takes `--image` does: open the image encoder a multimodal adapter
 * names (or the one `--vision` gives), on the engine the model runs on, and turn a picture into
 * the ImageFeatures the runtime reads. One place, so every command refuses the same misfits the
 * same way.
 */
import * as path from "node:path";
import type { Adapter } from "../adapters";
import { ExcitorInputError } from "../errors";
import type { VisionBlock } from "../excitor/config";
import { singleImage, type ImageFeatures, type ModelRuntime } from "../runtime";
import { VisionEncoder } from "./encoder";

/** The adapter's vision block, when it is a multimodal Excitor. */
export function visionBlockOf(adapter: Adapter | null): VisionBlock | undefined {
  return adapter?.method === "excitor" ? adapter.config.vision : undefined;
}

/**
 * The encoder of a multimodal adapter: `visionDir` when given, else the adapter's
 * `vision.encoder` resolved from `adapterDir`. Undefined for a text adapter (and then `visionDir`
 * is an error: nothing would read the pictures).
 */
export async function openAdapterEncoder(rt: ModelRuntime, adapter: Adapter | null, adapterDir: string | undefined, visionDir?: string): Promise<VisionEncoder | undefined> {
  const block = visionBlockOf(adapter);
  if (!block) {
    if (visionDir !== undefined) throw new ExcitorInputError(`--vision: ${adapterDir === undefined ? "there is no --adapter" : `the adapter ${adapterDir} is not multimodal (its adapter_config.json has no "vision" block)`}; nothing would read the pictures`);
    return undefined;
  }
  const dir = visionDir ?? path.resolve(adapterDir ?? ".", block.encoder);
  const encoder = await VisionEncoder.load(dir, { engine: rt.backend.startsWith("onnxruntime") ? "onnxruntime" : "tfjs", featureLayer: block.featureLayer });
  if (encoder.numTokens !== block.numTokens || encoder.hiddenSize !== block.hiddenSize) {
    encoder.dispose();
    throw new ExcitorInputError(
      `${dir}: this image encoder gives ${encoder.numTokens} tokens of width ${encoder.hiddenSize}, but the adapter was trained on ${block.numTokens} of width ${block.hiddenSize} (adapter_config.json "vision"); use the encoder it was trained with`,
      dir,
    );
  }
  return encoder;
}

/** One picture's features for a call, or a clear error when nothing can look at it. */
export async function pictureFeatures(encoder: VisionEncoder | undefined, file: string, where = "--image"): Promise<ImageFeatures> {
  if (!encoder) throw new ExcitorInputError(`${where}: pictures need a multimodal adapter (an Excitor adapter trained with --vision); this one reads text only`);
  return singleImage(await encoder.featuresOf([file]), encoder.numTokens, encoder.hiddenSize);
}
