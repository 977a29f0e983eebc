-- Parts of parallel tus uploads (Upload-Concat: partial) have no video of their own until
-- the final upload joins them; this records who created each, so only that account may
-- write to it or join it into its final upload.
CREATE TABLE app_upload_parts (
    upload_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES app_users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX app_upload_parts_owner ON app_upload_parts (owner_id);
