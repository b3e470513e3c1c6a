// Keeps the README's React quick start compiling: copies its ```tsx block into
// test/readme.generated.tsx (importing the sources instead of the package), which the
// type check (`npm run typecheck`) then compiles with everything else.
import { readFileSync, writeFileSync } from "node:fs";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const block = readme.match(/```tsx\n([\s\S]*?)```/);
if (!block) throw new Error("README.md has no ```tsx quick start block");
const code = block[1].replaceAll('from "meshwire/react"', 'from "../src/react/index.js"').replaceAll('from "meshwire"', 'from "../src/index.js"');
writeFileSync(new URL("./readme.generated.tsx", import.meta.url), `// Generated from README.md by test/readme-snippet.mjs.\n${code}`);
