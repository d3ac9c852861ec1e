import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelPathSwitch } from './kernel-path';

test('when a kernel path switch starts from its environment variable, then "ops" there forces the ops, anything else leaves our kernels on, and set returns the previous setting', () => {
  const env = 'FEDLORA_KERNEL_PATH_TEST';
  try {
    process.env[env] = 'ops';
    const forced = kernelPathSwitch(env);
    assert.equal(forced.auto(), false);
    assert.equal(forced.set('auto'), 'ops');
    assert.equal(forced.auto(), true);
    process.env[env] = 'yes';
    const other = kernelPathSwitch(env);
    assert.equal(other.auto(), true);
    assert.equal(other.set('ops'), 'auto');
    assert.equal(other.auto(), false);
    assert.equal(forced.auto(), true, 'each switch has its own setting');
  } finally {
    delete process.env[env];
  }
});
