-- 6: certificate renewal (docs/security.md). cert_expires_ms is the current certificate's
-- notAfter; agents enrolled before it got the 5 years (1825 days) enrollment gave them.
-- previous_cert_serial stays accepted until previous_cert_until_ms.
ALTER TABLE agents ADD COLUMN cert_expires_ms INTEGER;
ALTER TABLE agents ADD COLUMN cert_renewed_ms INTEGER;
ALTER TABLE agents ADD COLUMN previous_cert_serial TEXT;
ALTER TABLE agents ADD COLUMN previous_cert_until_ms INTEGER;
UPDATE agents SET cert_expires_ms = enrolled_ms + 1825 * 86400000;
