// The golden type map's table (GOLDEN_SCHEMA) and its rows: every exported Postgres type with
// edge values (NULLs, extremes, ±infinity, BC, NaN, -0, padding, long arrays). Shared by the golden round trip
// (test/integration/type-map.golden.test.ts) and the compaction breaker that re-encodes it.
export const GOLDEN_SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺');
CREATE DOMAIN grams AS numeric(8,3);
CREATE TABLE golden (
  id int PRIMARY KEY,
  updated_at timestamptz NOT NULL,
  c_int2 int2, c_int4 int4, c_int8 int8,
  c_num numeric(12,2), c_num38 numeric(38,0), c_num_frac numeric(38,30), c_num_free numeric,
  c_float4 float4, c_float8 float8, c_bool bool,
  c_text text, c_varchar varchar(20), c_char char(5),
  c_date date, c_ts timestamp, c_tstz timestamptz,
  c_time time, c_timetz timetz, c_interval interval, c_uuid uuid, c_inet inet, c_enum mood,
  c_json json, c_jsonb jsonb, c_bytea bytea, c_grams grams, c_point point,
  c_int_arr int4[], c_text_arr text[], c_num_arr numeric(6,2)[], c_uuid_arr uuid[], c_ts_arr timestamptz[],
  c_num_sp numeric(2,5), c_num_neg numeric(3,-2), c_long_arr int4[], c_sp_arr numeric(2,5)[]
);`;

export const GOLDEN_ROWS = `
INSERT INTO golden (id, updated_at) VALUES (1, '2024-06-01 00:00:00+00');
INSERT INTO golden VALUES (2, '2024-06-01 00:00:00.000001+00',
  32767, 2147483647, 9223372036854775807,
  9999999999.99, 99999999999999999999999999999999999999, 0.123456789012345678901234567890, 12345678901234567890123456789.123456789,
  3.4028235e38, 1.7976931348623157e308, true,
  'unicode ünïcödé 😀 中文', 'tab	and
newline', 'ab',
  'infinity', '294246-12-31 23:59:59.999999', 'infinity',
  '24:00:00', '23:59:59.999999+14', '178000000 years 11 mons 30 days 23:59:59.999999', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1/64', 'happy ☺',
  '{"b": 1, "a": [1, 2, {"deep": {"deeper": null}}]}', '{"b": 1, "a": [1, 2, {"deep": {"deeper": null}}], "a": "dup"}', '\\x00ff00', 99999.999, '(1.5,-2)',
  '{1,NULL,3}', '{"a,b","c\\"d",NULL,""}', '{1.50,-2.25}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"2024-01-01 00:00:00.000001+00",NULL}');
INSERT INTO golden VALUES (3, '2024-06-01 00:00:00.000001+00',
  -32768, -2147483648, -9223372036854775808,
  -9999999999.99, -99999999999999999999999999999999999999, -0.000000000000000000000000000001, -0.000000001,
  -3.4028235e38, -1.7976931348623157e308, false,
  '', '', '',
  '-infinity', '4713-01-01 00:00:00 BC', '-infinity',
  '00:00:00', '00:00:00-12', '-178000000 years', '00000000-0000-0000-0000-000000000000', '0.0.0.0', 'sad',
  'null', '[]', '\\x', -99999.999, '(0,0)',
  '{}', '{}', '{}', '{}', '{}');
INSERT INTO golden VALUES (4, '2024-06-02 23:59:59.999999+00',
  0, 0, 0, 0.01, 0, 0, 0, 'NaN', 'NaN', NULL,
  'quote '' and "double" and \\ backslash', 'x', 'abcde',
  '0044-03-15 BC', '1970-01-01 00:00:00', '2024-03-31 01:59:59.999999+00',
  '12:34:56.789012', NULL, '1 day -00:00:01', NULL, '192.168.0.1', 'ok',
  '{"unicode": "\\u00e9"}', '{"n": 1.000000000000000000001, "s": "x"}', '\\x000102', 0, NULL,
  '{NULL}', '{NULL}', '{NULL}', NULL, NULL);
INSERT INTO golden VALUES (5, '2024-10-27 00:59:59.999999+00',
  1, -1, 1, -0.01, 1, 0.000000000000000000000000000001, 0.000000001,
  'Infinity', '-Infinity', true,
  'x', NULL, NULL,
  '1970-01-01', '2024-10-27 02:30:00', '2024-10-27 02:30:00.5 Europe/Berlin',
  NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL);
INSERT INTO golden VALUES (6, '2024-12-31 23:59:59.999999+00',
  NULL, NULL, NULL, NULL, NULL, NULL, -12345678901234567890123456789.123456789,
  '-0', '-0', NULL, NULL, NULL, NULL,
  '1999-12-31', '2000-01-01 00:00:00', '1969-12-31 23:59:59.999999+00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
-- scale above precision, negative scale; arrays holding far more elements than the page has rows
UPDATE golden SET c_num_sp = 0.00099, c_num_neg = 99900, c_long_arr = ARRAY(SELECT g FROM generate_series(10000, 13000) g), c_sp_arr = '{0.00012,NULL,-0.00099}' WHERE id = 2;
UPDATE golden SET c_num_sp = -0.00001, c_num_neg = -100, c_long_arr = '{7}', c_sp_arr = '{}' WHERE id = 3;
UPDATE golden SET c_num_sp = 0, c_num_neg = 0, c_long_arr = ARRAY(SELECT g FROM generate_series(-500, 500) g) WHERE id = 4;
`;
