/**
 * The demo instruction set: questions about a short story, answered by one sentence in the
 * stories' own style whose last word comes from the story ("What color is the kite?" ->
 * "The kite was red."). Checked by exact match. The base model has seen the instruction format
 * and short answers about other things (who the friend is, where the story happens), never these
 * questions, and answers them with the wrong kind of sentence; an adapter has to learn which
 * sentence each question asks for and where in the story to look.
 */
import { Rng } from "../../engine/rng";
import type { Story } from "./corpus";

export interface DemoRecord {
  instruction: string;
  input: string;
  output: string;
  /** The word of the story the answer hinges on. */
  answer: string;
  task: string;
}

type Task = { name: string; instruction: (s: Story) => string; output: (s: Story) => string; answer: (s: Story) => string };

export const TASKS: Task[] = [
  { name: "name", instruction: (s) => `What is the name of the ${s.facts.animal}?`, output: (s) => `The ${s.facts.animal} was named ${s.facts.name}.`, answer: (s) => s.facts.name },
  { name: "color", instruction: (s) => `What color is the ${s.facts.object}?`, output: (s) => `The ${s.facts.object} was ${s.facts.color}.`, answer: (s) => s.facts.color },
  { name: "object", instruction: (s) => `What did ${s.facts.name} find?`, output: (s) => `${s.facts.name} found a ${s.facts.object}.`, answer: (s) => s.facts.object },
];

/**
 * Extra text for the tokenizer's training (demo/scripts/pretrain.ts) so that instruction words
 * are whole tokens. Frozen: the committed tokenizer was trained with exactly these strings.
 */
export const TASK_INSTRUCTIONS = ["What is the name of the", "Who is the friend of", "What color is the", "What did", "find?", "Where does the story happen?"];

export function makeRecords(source: Story[], seed: number): DemoRecord[] {
  const rng = new Rng(seed);
  return source.map((s) => {
    const task = TASKS[rng.int(TASKS.length)];
    // The leading space keeps the first word the same token as in the stories ("▁The", not "The").
    return { instruction: task.instruction(s), input: s.opening, output: ` ${task.output(s)}`, answer: task.answer(s), task: task.name };
  });
}

/** The first sentence of a response, lower-cased, without its final punctuation. */
export function firstSentence(text: string): string {
  return text.trim().split(/[\n.!?]/)[0].trim().toLowerCase();
}

/** Exact match: the response's first sentence is the expected sentence. */
export function isCorrect(response: string, record: Pick<DemoRecord, "output">): boolean {
  return firstSentence(response) === firstSentence(record.output);
}

/** Looser: the story word the answer hinges on appears in the response's first sentence. */
export function mentionsAnswer(response: string, record: Pick<DemoRecord, "answer">): boolean {
  return firstSentence(response).split(/[^a-z]+/).includes(record.answer.toLowerCase());
}
