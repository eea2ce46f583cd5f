// ESLint: typescript-eslint's recommended rules for all code (src, tests, client, bench),
// plus the type-aware rules that catch what a gateway cannot afford: a dropped promise, a
// promise passed where a callback's result is ignored, a switch that forgot a case.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  // request-checks.ts is generated (scripts/request-checks.mjs), unchecked code made by TypeBox.
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'test/artifacts/', 'bench/results/', 'eslint.config.js', 'src/protocol/request-checks.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: {
        // A file takes its types from the first of these that holds it, imports included; the
        // tests' program holds src, client and middleware too, so most runs build one program.
        project: ['./tsconfig.test.json', './tsconfig.js.json', './tsconfig.json', './client/tsconfig.json', './middleware/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  // Tests walk parsed JSON documents (compose files, OpenAPI, replies) whose shape is what they check.
  { files: ['test/**', 'client/test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  { files: ['client/**/*.ts', 'examples/browser.js', 'examples/express/page.js'], languageOptions: { globals: { ...globals.browser } } },
  // The README's examples import the installed package ('auth-gateway'), so no tsconfig of the
  // repository resolves them: linted without type information (the pack test runs them).
  // Their destructured values illustrate what a reply carries, so unused ones are fine there.
  { files: ['examples/**'], ...tseslint.configs.disableTypeChecked },
  { files: ['examples/**'], rules: { '@typescript-eslint/no-unused-vars': 'off' } },
  { files: ['**/*.js', '**/*.mjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
);
