// Validates rendered Kubernetes manifests (multi-document YAML on stdin or in files) against
// the Kubernetes API schemas of kubernetes-models, and strictly: a field the schema does not
// know is an error (the schema validators read every field they know; a proxy records which
// ones were read, and anything never read is unknown). Kinds without a schema here (custom
// resources) are checked against a small description of their own below.
'use strict';
const fs = require('fs');
const YAML = require('yaml');

// Custom resources: the fields each may have, as nested objects ('*' = any value).
const customResources = {
  'vpcresources.k8s.aws/v1beta1/SecurityGroupPolicy': {
    apiVersion: '*', kind: '*',
    metadata: { name: '*', namespace: '*', labels: '*', annotations: '*' },
    spec: { podSelector: { matchLabels: '*', matchExpressions: '*' }, serviceAccountSelector: '*', securityGroups: { groupIds: '*' } },
  },
};

// The compiled schema validator for a kind: the model module also exports the schema's name.
function validatorFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try {
    const schemaName = Object.keys(require(path)).find((k) => k.startsWith('IoK8s'));
    if (!schemaName) return null;
    // _schemas is not among the package's exports: load it by file path.
    const modelFile = require.resolve(path);
    const root = modelFile.slice(0, modelFile.lastIndexOf('kubernetes-models/') + 'kubernetes-models/'.length);
    return require(`${root}_schemas/${schemaName}.js`).validate;
  } catch (e) {
    return null;
  }
}

// Wraps `value` so that every property read is recorded in `seen` by its path.
function track(value, path, seen) {
  if (value === null || typeof value !== 'object') return value;
  return new Proxy(value, {
    get(target, key) {
      if (typeof key === 'string') seen.add(path + '/' + key);
      return track(target[key], path + '/' + String(key), seen);
    },
    ownKeys(target) {
      // Iterating keys (maps such as labels) counts as knowing them all.
      for (const k of Reflect.ownKeys(target)) if (typeof k === 'string') seen.add(path + '/' + k);
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(value, path, seen, out) {
  if (value === null || typeof value !== 'object') return;
  for (const key of Object.keys(value)) {
    const p = path + '/' + key;
    if (!seen.has(p)) out.push('unknown field ' + p);
    else unknownFields(value[key], p, seen, out);
  }
}

function checkCustom(value, shape, path, out) {
  if (shape === '*' || value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const key of Object.keys(value)) {
    if (!(key in shape)) out.push('unknown field ' + path + '/' + key);
    else checkCustom(value[key], shape[key], path + '/' + key, out);
  }
}

let failures = 0;
let documents = 0;
const inputs = process.argv.length > 2 ? process.argv.slice(2) : ['/dev/stdin'];
for (const file of inputs) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
    if (doc.errors.length) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      failures++;
      continue;
    }
    const obj = doc.toJSON();
    if (!obj) continue;
    documents++;
    const id = `${file}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const custom = customResources[`${obj.apiVersion}/${obj.kind}`];
    const problems = [];
    if (custom) {
      checkCustom(obj, custom, '', problems);
    } else {
      const validate = validatorFor(obj.apiVersion, obj.kind);
      if (!validate) {
        console.error(`${id}: no schema for ${obj.apiVersion} ${obj.kind}`);
        failures++;
        continue;
      }
      const seen = new Set();
      if (!validate(track(obj, '', seen)))
        for (const e of validate.errors || []) problems.push(`${e.instancePath || '(root)'}: ${e.message || e.keyword} ${JSON.stringify(e.params)}`);
      unknownFields(obj, '', seen, problems);
    }
    for (const p of problems) console.error(`${id}: ${p}`);
    if (problems.length) failures++;
  }
}
console.log(`schema: ${documents - failures} valid, ${failures} invalid`);
process.exit(failures ? 1 : 0);
