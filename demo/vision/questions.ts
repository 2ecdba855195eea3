/**
 * The multimodal demo's instruction set: one question about one scene, answered by a short
 * sentence in the demo stories' own style whose deciding word is one of the options the question
 * lists ("What color is the ball: red, green or blue?" -> "The ball was green."). Excitor's image
 * path only re-weights attention over the text, so the answer must be there to attend to.
 *
 * Four tasks: the color of a named shape, which shape is at a place, the color of what is at a
 * place (where things are decides it), and how many shapes there are. Shapes are named by story
 * objects that are single tokens (KIND_NAMES); the places and counts are not, and stay in the
 * question or in the count answer.
 *
 * Balanced so that the text alone says nothing: each task is a quarter of the records, answers
 * are spread evenly over their values, the right option is first, second or third equally often,
 * and the other options are drawn at random. Guessing without the image scores about 1/3.
 */
import { Rng } from "../../engine/rng";
import { COLORS, KINDS, POSITIONS, randomShapes, renderScene, type Scene } from "./scenes";

export const TASK_NAMES = ["color", "shape", "place", "count"] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export interface VisionRecord {
  instruction: string;
  input: string;
  /** The answer sentence, with a leading space as in the text demo (the model's own "▁It"). */
  output: string;
  /** The option word the answer hinges on. */
  answer: string;
  task: TaskName;
}

export interface VisionExample {
  record: VisionRecord;
  scene: Scene;
}

/** The committed splits (demo/vision/data): sizes and seeds. */
export const VISION_SPLITS = [
  { name: "train", count: 600, seed: 11 },
  { name: "heldout", count: 100, seed: 12 },
] as const;

/** Record `i` (0-based) of a split's JSONL: its picture is images/<split>-<i+1, 4 digits>.png. */
export function imagePath(split: string, i: number): string {
  return `images/${split}-${String(i + 1).padStart(4, "0")}.png`;
}

/** The JSONL line of a record, fields in a fixed order. */
export function recordLine(r: VisionRecord, image: string): string {
  return JSON.stringify({ instruction: r.instruction, input: r.input, output: r.output, image, answer: r.answer, task: r.task });
}

/**
 * What the questions call each kind: objects of the demo model's stories, each one token of its
 * tokenizer ("square" is five: ▁s|q|u|ar|e). An answer word the model must spell out piece by
 * piece is far harder to learn than one it copies whole (measured: demo/README.md).
 */
export const KIND_NAMES = { square: "box", circle: "ball", triangle: "hat" } as const;
const NAMES = KINDS.map((k) => KIND_NAMES[k]);

const COUNT_WORDS = ["one", "two", "three"] as const;
const OPTIONS = 3;

/** `n` values cycling through `values`, shuffled: every value about n / |values| times. */
function balanced<T>(rng: Rng, values: readonly T[], n: number): T[] {
  return rng.shuffle(Array.from({ length: n }, (_, i) => values[i % values.length]));
}

/** The answer at index `at` among OPTIONS options, the others drawn from `pool` without it. */
function options<T>(rng: Rng, answer: T, pool: readonly T[], at: number): T[] {
  const others = rng.shuffle(pool.filter((v) => v !== answer)).slice(0, OPTIONS - 1);
  others.splice(at, 0, answer);
  return others;
}

const listed = (xs: readonly string[]): string => `${xs.slice(0, -1).join(", ")} or ${xs[xs.length - 1]}`;

/** `n` questions with their scenes, from `seed`. */
export function makeExamples(n: number, seed: number): VisionExample[] {
  const rng = new Rng(seed);
  const tasks = balanced(rng, TASK_NAMES, n);
  const perTask = (t: TaskName) => tasks.filter((x) => x === t).length;
  // one balanced stream per task and per field, drawn in order as that task's records come up
  const streams = new Map<TaskName, { at: number[]; count: number[]; kind: string[]; color: string[]; position: string[] }>();
  for (const t of TASK_NAMES) {
    const m = perTask(t);
    streams.set(t, {
      at: balanced(rng, [0, 1, 2], m),
      count: balanced(rng, [1, 2, 3], m),
      kind: balanced(rng, KINDS, m),
      color: balanced(rng, COLORS, m),
      position: balanced(rng, POSITIONS, m),
    });
  }
  return tasks.map((task) => {
    const s = streams.get(task)!;
    const at = s.at.pop()!;
    const count = s.count.pop()!;
    const kind = s.kind.pop() as (typeof KINDS)[number];
    const color = s.color.pop() as (typeof COLORS)[number];
    const position = s.position.pop() as (typeof POSITIONS)[number];
    let record: VisionRecord;
    let scene: Scene;
    if (task === "color") {
      scene = renderScene(rng, randomShapes(rng, count, { kind, color }));
      const name = KIND_NAMES[kind];
      record = { instruction: `What color is the ${name}: ${listed(options(rng, color, COLORS, at))}?`, input: "", output: ` The ${name} was ${color}.`, answer: color, task };
    } else if (task === "shape") {
      scene = renderScene(rng, randomShapes(rng, count, { kind, position }));
      const name = KIND_NAMES[kind];
      const opts = options(rng, name, NAMES, at).map((k) => `a ${k}`);
      record = { instruction: `What is on the ${position}: ${listed(opts)}?`, input: "", output: ` It was a ${name}.`, answer: name, task };
    } else if (task === "place") {
      scene = renderScene(rng, randomShapes(rng, count, { color, position }));
      record = { instruction: `What color is on the ${position}: ${listed(options(rng, color, COLORS, at))}?`, input: "", output: ` It was ${color}.`, answer: color, task };
    } else {
      scene = renderScene(rng, randomShapes(rng, count));
      const word = COUNT_WORDS[count - 1];
      record = { instruction: `How many shapes are there: ${listed(COUNT_WORDS)}?`, input: "", output: count === 1 ? " There was one." : ` There were ${word}.`, answer: word, task };
    }
    return { record, scene };
  });
}
