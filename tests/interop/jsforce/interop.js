// Drive an org with unmodified jsforce 3: identity, sObject REST calls and Bulk 2.0 loads
// and a query, as a user's script would. Prints one JSON document of what each call
// answered; tests/interop/test_jsforce.py checks it and the org's records.
//
// Usage: SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... node interop.js
'use strict';

const jsforce = require('jsforce');

async function collect(recordStream) {
  const records = [];
  await new Promise((resolve, reject) => {
    recordStream.on('record', (r) => records.push(r));
    recordStream.on('end', resolve);
    recordStream.on('error', reject);
  });
  return records;
}

function ids(results) {
  return results.map((r) => r.sf__Id);
}

async function main() {
  const conn = new jsforce.Connection({
    instanceUrl: process.env.SF_INSTANCE_URL,
    accessToken: process.env.SF_ACCESS_TOKEN,
    version: '66.0',
  });
  conn.bulk2.pollInterval = 100;
  conn.bulk2.pollTimeout = 60000;
  const out = {};
  const account = conn.sobject('Account');

  const identity = await conn.identity();
  out.identity = { user_id: identity.user_id, organization_id: identity.organization_id,
                   username: identity.username };

  // sObject REST: one record, then collections.
  out.createOne = await account.create({ Name: 'JS One', customExtIdField__c: 'JS-1' });
  out.createMany = await account.create([{ Name: 'JS Two' }, { Name: 'JS Three' }]);
  const [one, two, three] = [out.createOne.id, ...out.createMany.map((r) => r.id)];
  out.retrieveOne = await account.retrieve(one);
  out.retrieveMany = await account.retrieve([one, two, three], { fields: ['Id', 'Name'] });
  out.updateOne = await account.update({ Id: one, Name: 'JS One updated' });
  out.updateMany = await account.update([{ Id: two, Name: 'JS Two updated' },
                                         { Id: three, Industry: 'Not an industry' }]);
  out.upsertNew = await account.upsert({ Name: 'JS Upserted', customExtIdField__c: 'JS-9' },
                                       'customExtIdField__c');
  out.upsertOld = await account.upsert({ Name: 'JS One upserted', customExtIdField__c: 'JS-1' },
                                       'customExtIdField__c');
  out.destroyOne = await account.destroy(three);
  out.destroyMany = await account.destroy([two]);
  out.createError = await account.create({ Industry: 'Banking' }).catch(
    (e) => ({ name: e.name, errorCode: e.errorCode, message: e.message }));

  // Bulk 2.0: every ingest operation, then a query job.
  const load = (operation, input, extra = {}) => conn.bulk2.loadAndWaitForResults(
    { object: 'Account', operation, input, ...extra });
  const inserted = await load('insert', [
    { Name: 'Bulk A', customExtIdField__c: 'B-A' }, { Name: 'Bulk B', customExtIdField__c: 'B-B' },
    { Name: 'Bulk C' }, { Industry: 'Banking' }]);
  out.bulkInsert = { ok: inserted.successfulResults.length, failed: inserted.failedResults.map(
    (r) => r.sf__Error) };
  const [a, b, c] = ['Bulk A', 'Bulk B', 'Bulk C'].map(
    (name) => inserted.successfulResults.find((r) => r.Name === name).sf__Id);
  // jsforce writes the CSV header from the first record's keys: give every record the same.
  const updated = await load('update', [{ Id: a, Name: 'Bulk A updated', Industry: 'Banking' },
                                        { Id: b, Name: 'Bulk B', Industry: 'Banking' }]);
  out.bulkUpdate = { ok: ids(updated.successfulResults).sort(), failed: updated.failedResults.length };
  const upserted = await load('upsert', 'customExtIdField__c,Name\nB-A,Bulk A upserted\nB-Z,Bulk Z\n',
                              { externalIdFieldName: 'customExtIdField__c' });
  out.bulkUpsert = upserted.successfulResults.map((r) => [r.customExtIdField__c, r.sf__Created])
    .sort();
  const deleted = await load('delete', [{ Id: c }]);
  out.bulkDelete = ids(deleted.successfulResults);

  const rows = await collect(await conn.bulk2.query(
    "SELECT Id, Name, customExtIdField__c FROM Account WHERE Name LIKE 'Bulk%' ORDER BY Name"));
  out.bulkQuery = rows.map((r) => [r.Name, r.customExtIdField__c]);
  // hardDelete too (the last of the ingest operations): no Recycle Bin.
  const z = upserted.successfulResults.find((r) => r.customExtIdField__c === 'B-Z').sf__Id;
  const hard = await load('hardDelete', [{ Id: z }]);
  out.bulkHardDelete = { z, ok: ids(hard.successfulResults), failed: hard.failedResults.length };
  out.ids = { one, two, three, a, b, c };
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(`${e.name}: ${e.message}\n${e.stack}\n`);
  process.exit(1);
});
