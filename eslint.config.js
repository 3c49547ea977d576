// Lint gate run by the test command: type-aware rules catch floating promises,
// which in an agent mean a lost error and a leaked kernel object.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** One no-restricted-imports block per top-level folder, naming the folders it may not import. */
function walls(forbidden) {
  return Object.entries(forbidden).map(([folder, others]) => ({
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: others.map((other) => ({
            regex: `(^|/)${other}(/|$)`,
            message: `${folder}/ may import only lib/, protocol/, crds/ and itself: move what both sides need there.`,
          })),
        },
      ],
    },
  }));
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'hack/apiserver/**', 'charts/**', '.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // The house's walls: the controller, the agent and the CLI share code only
  // through lib/ (Kubernetes client, PKI, logging, errors), protocol/ (what
  // they must agree on over the wire) and crds/ (the API). test/ and bench/
  // drive every part and are free.
  ...walls({
    controllers: ['node-agent', 'cli'],
    'node-agent': ['controllers', 'cli'],
    cli: ['controllers', 'node-agent'],
    lib: ['controllers', 'node-agent', 'cli'],
    protocol: ['controllers', 'node-agent', 'cli'],
    crds: ['controllers', 'node-agent', 'cli'],
  }),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { process: 'readonly', console: 'readonly', require: 'readonly', module: 'writable' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // Every test file's top-level describe names its tier once ("unit: ", "node: ", "cluster: ",
  // "e2e: ", "vm: "), so a reporter line or a --grep says where a test runs and what it needs.
  ...[
    ['unit', ['**/*.test.ts'], ['test/**']],
    ['node', ['test/node/**/*.test.ts']],
    ['cluster', ['test/cluster/**/*.test.ts']],
    ['e2e', ['test/e2e/**/*.test.ts']],
    ['vm', ['test/vm/**/*.test.ts']],
  ].map(([tier, files, ignores = []]) => {
    const top = "CallExpression[callee.name='describe']:not(CallExpression[callee.name='describe'] CallExpression)";
    const label = `/^${tier}: (?!(unit|node|cluster|e2e|vm): )/`;
    const message = `a top-level describe title starts with "${tier}: " (the tier, once)`;
    return {
      files,
      ignores,
      rules: {
        'no-restricted-syntax': [
          'error',
          { selector: `${top} > Literal:first-child:not([value=${label}])`, message },
          {
            selector: `${top} > TemplateLiteral:first-child > TemplateElement:first-child:not([value.raw=${label}])`,
            message,
          },
        ],
      },
    };
  }),
);
