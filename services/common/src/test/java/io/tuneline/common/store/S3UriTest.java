package io.tuneline.common.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class S3UriTest {

    @Test
    void parsesAndPrintsBucketAndKey() {
        S3Uri uri = S3Uri.parse("s3://tuneline/datasets/job-1/raw/data.jsonl");
        assertThat(uri.bucket()).isEqualTo("tuneline");
        assertThat(uri.key()).isEqualTo("datasets/job-1/raw/data.jsonl");
        assertThat(uri).hasToString("s3://tuneline/datasets/job-1/raw/data.jsonl");
        assertThat(uri.isPrefix()).isFalse();
    }

    @Test
    void resolvesBelowAPrefix() {
        S3Uri prefix = S3Uri.parse("s3://tuneline/runs/job-1/model/");
        assertThat(prefix.isPrefix()).isTrue();
        assertThat(prefix.resolve("config.json"))
                .hasToString("s3://tuneline/runs/job-1/model/config.json");
    }

    @Test
    void explainsWhatIsWrongWithABadUri() {
        assertThatThrownBy(() -> S3Uri.parse("https://x/y"))
                .hasMessageContaining("is not an s3:// URI");
        assertThatThrownBy(() -> S3Uri.parse("s3://bucket-only"))
                .hasMessageContaining("has no object key");
        assertThatThrownBy(() -> S3Uri.parse("s3://Bad_Bucket/k"))
                .hasMessageContaining("invalid bucket name 'Bad_Bucket'");
    }
}
