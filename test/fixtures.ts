/**
 * Where the test fixtures live: `test/fixtures` in this repository (origins and licences in its
 * README.md), so a fresh clone with nothing beside it runs every test. Compiled tests run from
 * dist/test, so the repository root is two levels up.
 */
import * as path from "node:path";

export const FIXTURES = path.resolve(__dirname, "../../test/fixtures");

/** GPT-2's byte → printable character table used by byte-level BPE (e.g. space → "Ġ"). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
}

/** The ChatML chat template (Qwen / many fine-tunes), without a default system prompt. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * A tiny GPT-2-style byte-level BPE tokenizer built in memory: the 256 byte symbols (ids 0-255),
 * a few merges ("Ġt", "he", "Ġthe", "ll", "hell", "hello", "Ġw", "or"), and special tokens
 * `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, with a ChatML chat template, eos `<|im_end|>`,
 * no BOS (like Qwen). Returned as parsed tokenizer.json / tokenizer_config.json objects.
 */
export function tinyByteLevelTokenizer(): { tokenizerJson: object; tokenizerConfig: object } {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = b));
  const merges: [string, string][] = [
    ["Ġ", "t"],
    ["h", "e"],
    ["Ġt", "he"],
    ["l", "l"],
    ["he", "ll"],
    ["hell", "o"],
    ["Ġ", "w"],
    ["o", "r"],
  ];
  let next = 256;
  for (const [a, b] of merges) vocab[a + b] = next++;
  const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
  const added_tokens = specials.map((content, i) => ({
    id: next + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    bos_token: null,
    eos_token: "<|im_end|>",
    pad_token: "<|endoftext|>",
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
  };
  return { tokenizerJson, tokenizerConfig };
}
