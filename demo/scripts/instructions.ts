/**
 * The demo instruction set: questions about a story whose answer is one word of that story, so
 * following the instruction is checked by exact match. The base model has only ever continued
 * stories, so it does not answer them; an adapter has to learn to look back at the right word.
 */
import { Rng } from "../../engine/rng";
import type { Story } from "./corpus";

export interface DemoRecord {
  instruction: string;
  input: string;
  output: string;
  /** The answer that counts, for scoring. */
  answer: string;
  task: string;
}

type Task = { name: string; instruction: (s: Story) => string; answer: (s: Story) => string };

export const TASKS: Task[] = [
  { name: "name", instruction: (s) => `What is the name of the ${s.facts.animal}?`, answer: (s) => s.facts.name },
  { name: "friend", instruction: (s) => `Who is the friend of ${s.facts.name}?`, answer: (s) => s.facts.friend },
  { name: "color", instruction: (s) => `What color is the ${s.facts.object}?`, answer: (s) => s.facts.color },
  { name: "object", instruction: (s) => `What did ${s.facts.name} find?`, answer: (s) => s.facts.object },
  { name: "place", instruction: () => "Where does the story happen?", answer: (s) => s.facts.place },
];

/** Every instruction wording (with placeholders filled in), for the tokenizer's training text. */
export const TASK_INSTRUCTIONS = ["What is the name of the", "Who is the friend of", "What color is the", "What did", "find?", "Where does the story happen?"];

export function makeRecords(source: Story[], seed: number): DemoRecord[] {
  const rng = new Rng(seed);
  return source.map((s) => {
    const task = TASKS[rng.int(TASKS.length)];
    const answer = task.answer(s);
    // The leading space keeps the answer the same token as in the stories ("▁Sue", not "Sue").
    return { instruction: task.instruction(s), input: s.text, output: ` ${answer}.`, answer, task: task.name };
  });
}

/** The first sentence or line of a response, lower-cased, without trailing punctuation. */
export function normalizeAnswer(text: string): string {
  return text.trim().split(/[\n.!?]/)[0].trim().toLowerCase();
}

export function isCorrect(response: string, answer: string): boolean {
  return normalizeAnswer(response) === answer.toLowerCase();
}
