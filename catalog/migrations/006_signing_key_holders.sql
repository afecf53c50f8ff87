-- Which signing keys every control-plane replica's proxies hold. Each replica's xDS feed reports
-- the keys that every proxy connected to it has ACKed (and reports again while it lives); a
-- pending signing key may start signing before its activation time once every live replica
-- reports holding it, so a token it signs is never refused by a proxy that has not learned it.
create table signing_key_holders (
  replica    text primary key,
  seen_at    timestamptz not null default now(),
  held_kids  text[] not null default '{}'
);

---- create above / drop below ----

drop table signing_key_holders;
