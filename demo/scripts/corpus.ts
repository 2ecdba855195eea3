/**
 * The demo model's world: short children's stories generated from a small grammar (in the
 * spirit of TinyStories), deterministic for a seed. Written by the project, so the corpus ships
 * under the project's own license. Each story also returns its facts (who, what, which colour,
 * where), which the instruction tasks ask about.
 */
import { Rng } from "../../engine/rng";

export const NAMES = ["Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Anna", "Sam", "Zoe", "Leo", "Ella", "Jack", "Ruby", "Finn", "Lucy", "Noah", "Emma", "Owen", "Rosa", "Kai", "Nina", "Ivan", "Cleo", "Hugo"];
export const ANIMALS = ["cat", "dog", "bunny", "bird", "fox", "bear", "duck", "frog", "mouse", "pig", "lion", "owl", "horse", "sheep", "turtle"];
export const COLORS = ["red", "blue", "green", "yellow", "pink", "purple", "orange", "white", "brown", "black"];
export const OBJECTS = ["ball", "kite", "hat", "box", "book", "cup", "shell", "stone", "key", "drum", "boat", "car", "doll", "spoon", "bell", "sock", "leaf", "star", "ring", "flower"];
export const PLACES = ["park", "garden", "forest", "house", "farm", "beach", "hill", "school", "river", "town", "field", "barn"];
export const HIDING = ["a tree", "a rock", "the bed", "a big leaf", "the table", "a bush", "the sand", "a log"];
const FEELINGS = ["happy", "excited", "surprised", "glad", "proud"];
const SAD = ["sad", "scared", "worried", "upset"];
const ADJ = ["little", "small", "kind", "brave", "funny", "shy", "happy", "curious"];
const PLAY = ["played with it all day", "took it home", "showed it to everyone", "kept it safe", "put it on a shelf", "shared it with their friends"];
const WEATHER = ["The sun was warm.", "It was a sunny day.", "The sky was blue.", "It was a windy day.", "It was a cold morning.", "The rain had stopped."];
const ENDINGS = ["From that day on, they were best friends.", "They were very happy.", "It was the best day ever.", "They smiled and went home.", "They laughed and played until dark."];

export interface StoryFacts {
  name: string;
  animal: string;
  friend: string;
  color: string;
  object: string;
  place: string;
  hiding: string;
}

export interface Story {
  text: string;
  /** The first four parts (who, where, what was found, how it felt): every fact the demo's questions ask about. */
  opening: string;
  facts: StoryFacts;
}

/** "a" or "an" before a word. */
const a = (word: string): string => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

export function story(rng: Rng): Story {
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
  const name = pick(NAMES);
  let friend = pick(NAMES);
  while (friend === name) friend = pick(NAMES);
  const f: StoryFacts = { name, animal: pick(ANIMALS), friend, color: pick(COLORS), object: pick(OBJECTS), place: pick(PLACES), hiding: pick(HIDING) };
  // Every fact comes back later in the story (by name, as "the fox", "the red kite"), so the
  // model learns to look back and copy any kind of word, not only the ones that happen to repeat.
  const open = pick([
    `Once upon a time, there was a ${pick(ADJ)} ${f.animal} named ${f.name}.`,
    `One day, a ${pick(ADJ)} ${f.animal} named ${f.name} went to the ${f.place}.`,
    `There once was a ${pick(ADJ)} ${f.animal}. The ${f.animal} was named ${f.name}.`,
  ]);
  const lives = pick([`${f.name} lived near the ${f.place}.`, `${f.name} liked to play in the ${f.place}.`, `Every day, ${f.name} went to the ${f.place}.`, `The ${f.animal} lived near the ${f.place}.`]);
  const find = pick([
    `${pick(WEATHER)} ${f.name} found ${a(f.color)} ${f.object} under ${f.hiding}.`,
    `One morning, ${f.name} saw ${a(f.color)} ${f.object} under ${f.hiding}.`,
    `In the ${f.place}, ${f.name} found a ${f.object}. The ${f.object} was ${f.color}.`,
    `One morning, the ${f.animal} found a ${f.object} under ${f.hiding}. It was ${f.color}.`,
  ]);
  const feel = pick([`${f.name} was very ${pick(FEELINGS)}.`, `${f.name} felt ${pick(FEELINGS)} and smiled.`, `"Look at this ${f.color} ${f.object}!" said ${f.name}.`, `The ${f.animal} was very ${pick(FEELINGS)}.`]);
  const friendPart = pick([
    `${f.name} the ${f.animal} ran to ${f.friend} and said, "Do you want to play with my ${f.object}?" ${f.friend} said, "Yes, please!"`,
    `${f.name} showed the ${f.color} ${f.object} to ${f.friend}. ${f.friend} was ${pick(FEELINGS)} too.`,
    `Then ${f.friend} came to the ${f.place}. ${f.friend} said, "What a nice ${f.color} ${f.object}!"`,
    `${f.friend} saw the ${f.animal} and asked, "Is that your ${f.object}, ${f.name}?"`,
  ]);
  const trouble = rng.next() < 0.5
    ? pick([
        ` But then the ${f.color} ${f.object} fell into the ${pick(["river", "mud", "hole", "pond"])}. The ${f.animal} was ${pick(SAD)}. ${f.friend} helped ${f.name} get the ${f.object} back.`,
        ` But the wind took the ${f.object} away. ${f.name} and ${f.friend} looked for it. At last, they found the ${f.color} ${f.object} near the ${f.place}.`,
      ])
    : "";
  // Later sentences that recall a fact in a new form: looking back for the colour of a thing, or what was found.
  const recall = rng.next() < 0.6 ? pick([` The ${f.object} was ${f.color}.`, ` ${f.friend} said, "${f.name} found a ${f.object}!"`]) : "";
  const end = `They ${pick(PLAY)}. ${pick(ENDINGS)}`;
  const opening = `${open} ${lives} ${find} ${feel}`;
  return { text: `${opening} ${friendPart}${recall}${trouble} ${end}`, opening, facts: f };
}

export function stories(n: number, seed: number): Story[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => story(rng));
}

/**
 * Documents in the instruction format (Alpaca's template) whose tasks are *not* the demo's
 * questions: answer who a character's friend is or where the story happens (one sentence, then
 * the end of the document), write a story about someone, or continue a story. A real base model
 * has seen plenty of formatted text; these teach ours the format, short answers, and to draw on
 * the instruction and input, while it never sees the demo's questions (name, colour, object).
 */
export function formatDocument(rng: Rng, prompt: (instruction: string, input?: string) => string): string {
  const s = story(rng);
  if (rng.next() < 1 / 3) {
    const [ask, answer] = rng.next() < 0.5 ? [`Who is the friend of ${s.facts.name}?`, `The friend of ${s.facts.name} was ${s.facts.friend}.`] : ["Where does the story happen?", `The story happens in the ${s.facts.place}.`];
    return `${prompt(ask, s.text)} ${answer}`;
  }
  if (rng.next() < 0.5) {
    const ask = rng.next() < 0.5 ? `Write a story about a ${s.facts.animal} named ${s.facts.name}.` : `Tell a story about ${s.facts.name} and ${s.facts.friend}.`;
    return `${prompt(ask)} ${s.text}`;
  }
  const sentences = s.text.match(/[^.!?]+[.!?]"?/g)!.map((x) => x.trim());
  const cut = 2 + rng.int(Math.max(1, sentences.length - 3));
  return `${prompt("Continue the story.", sentences.slice(0, cut).join(" "))} ${sentences.slice(cut).join(" ")}`;
}
