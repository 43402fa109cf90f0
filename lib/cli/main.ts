#!/usr/bin/env node
// gpt2-node command line. Commands are added as the library grows (see DESIGN.md).
import { info } from '../info.js';

const [command, ...rest] = process.argv.slice(2);
const json = rest.includes('--json');

switch (command) {
  case 'info': {
    const i = info();
    if (json) console.log(JSON.stringify(i, null, 2));
    else {
      console.log(`CPU: ${i.cpu.brand} (${i.cpu.isa}), ${i.cpu.defaultThreads} threads`);
    }
    break;
  }
  default:
    console.error(`usage: gpt2-node <info> [--json]`);
    process.exitCode = command ? 2 : 0;
}
