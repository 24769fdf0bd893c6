-- The offline transformation as one bare DuckDB script: the yardstick bench.offline compares the pipeline with.
-- Same inputs, same rules (freshness, own offers, undercut rounded down, clamp), same three documents; no
-- validation report, no Dagster, no metadata. Placeholders: {data}, {out}, {seller}, {fresh_since}.
CREATE TABLE master AS SELECT sku, CAST(quantity AS BIGINT) AS quantity, CAST(price AS DECIMAL(18,2)) AS price,
    CAST(handling_time_days AS BIGINT) AS handling_time_days
FROM read_csv('{data}/master_inventory.csv', header = true, all_varchar = true);
CREATE TABLE mappings AS SELECT sku, asin, fulfillment, CAST(min_price AS DECIMAL(18,2)) AS min_price,
    CAST(max_price AS DECIMAL(18,2)) AS max_price, CAST(NULLIF(shipping, '') AS DECIMAL(18,2)) AS shipping,
    CAST(NULLIF(undercut_percent, '') AS DECIMAL(9,4)) AS undercut_percent
FROM read_csv('{data}/channel_mappings.csv', header = true, all_varchar = true) WHERE channel = 'us';
CREATE TABLE offers AS SELECT asin, seller_id, CAST(price AS DECIMAL(18,2)) AS price,
    CAST(shipping AS DECIMAL(18,2)) AS shipping, fulfillment, CAST(observed_at AS TIMESTAMPTZ) AS observed_at
FROM read_csv('{data}/competitor_prices.csv', header = true, all_varchar = true) WHERE channel = 'us';
CREATE TABLE fba AS SELECT sku, CAST(fulfillable_quantity AS BIGINT) AS q
FROM read_csv('{data}/fba_inventory.csv', header = true, all_varchar = true) WHERE channel = 'us';
CREATE TABLE best AS SELECT asin, min(CAST((price + shipping) * 100 AS BIGINT)) AS landed
FROM offers WHERE seller_id <> '{seller}' AND observed_at >= TIMESTAMPTZ '{fresh_since}' GROUP BY asin;
CREATE TABLE updates AS
SELECT m.sku, m.asin, m.fulfillment,
       greatest(CAST(m.min_price * 100 AS BIGINT), least(CAST(m.max_price * 100 AS BIGINT),
           CASE WHEN b.landed IS NULL THEN CAST(floor(i.price * 100) AS BIGINT)
                ELSE CAST(b.landed * (1000000 - CAST(coalesce(m.undercut_percent, 0.5) * 10000 AS BIGINT)) // 1000000
                          AS BIGINT) - CASE WHEN m.fulfillment = 'FBA' THEN 0
                                            ELSE CAST(coalesce(m.shipping, 0) * 100 AS BIGINT) END END)) AS p,
       CAST(m.min_price * 100 AS BIGINT) AS lo, CAST(m.max_price * 100 AS BIGINT) AS hi,
       CASE WHEN m.fulfillment = 'FBM' THEN greatest(i.quantity, 0) END AS q, i.handling_time_days AS h
FROM mappings m JOIN master i USING (sku) LEFT JOIN best b USING (asin) WHERE m.asin IS NOT NULL AND m.asin <> '';
CREATE MACRO t(c) AS printf('%d.%02d', c // 100, c % 100);
COPY (SELECT sku || chr(9) || t(p) || chr(9) || t(lo) || chr(9) || t(hi) || chr(9) || coalesce(CAST(q AS VARCHAR), '')
      || chr(9) || CASE WHEN fulfillment = 'FBA' THEN '' ELSE coalesce(CAST(h AS VARCHAR), '') END || chr(9)
      || CASE WHEN fulfillment = 'FBA' THEN 'AMAZON_NA' ELSE 'DEFAULT' END AS l FROM updates ORDER BY sku)
TO '{out}/pq.txt' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '');
COPY (SELECT sku || chr(9) || asin || chr(9) || '1' || chr(9) || t(p) || chr(9) || t(lo) || chr(9) || t(hi) || chr(9)
      || '11' || chr(9) || coalesce(CAST(q AS VARCHAR), '') || chr(9) || 'a' || repeat(chr(9), 5)
      || CASE WHEN fulfillment = 'FBA' THEN 'AMAZON_NA' ELSE 'DEFAULT' END AS l FROM updates ORDER BY sku)
TO '{out}/inv.txt' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '');
COPY (SELECT '{{"header":{{"sellerId":"{seller}","version":"2.0"}},"messages":[' || string_agg(m, ',' ORDER BY n) || ']}}'
      FROM (SELECT row_number() OVER (ORDER BY sku) AS n, '{{"messageId":' || row_number() OVER (ORDER BY sku)
                   || ',"sku":' || to_json(sku) || ',"operationType":"PATCH","productType":"PRODUCT","patches":['
                   || '{{"op":"replace","path":"/attributes/purchasable_offer","value":[{{"marketplace_id":"ATVPDKIKX0DER",'
                   || '"currency":"USD","our_price":[{{"schedule":[{{"value_with_tax":' || t(p) || '}}]}}]}}]}}'
                   || CASE WHEN q IS NULL THEN '' ELSE ',{{"op":"replace","path":"/attributes/fulfillment_availability",'
                      || '"value":[{{"fulfillment_channel_code":"DEFAULT","quantity":' || q || '}}]}}' END || ']}}' AS m
            FROM updates)
      GROUP BY (n - 1) // 25000)
TO '{out}/listings.jsonl' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '');
