package io.tuneline.ingestion.source;

import io.minio.GetObjectArgs;
import io.minio.MinioClient;
import io.minio.StatObjectArgs;
import io.minio.errors.ErrorResponseException;
import io.tuneline.common.store.S3Uri;
import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import okhttp3.OkHttpClient;

/**
 * An {@code s3://} dataset on another S3 endpoint ({@code dataset.s3_endpoint}), read with the
 * credentials the service holds under the job's {@code dataset.credentials_ref}; the job never
 * carries a secret. The endpoint's host passes the same checks as an HTTP dataset's (allowed hosts,
 * public addresses only unless configured), since a job chooses it.
 */
final class ExternalS3Source {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    private final Map<String, IngestionConfig.S3Credentials> credentials;
    private final HttpSource hosts;

    ExternalS3Source(Map<String, IngestionConfig.S3Credentials> credentials, HttpSource hosts) {
        this.credentials = credentials;
        this.hosts = hosts;
    }

    /** An open object on the endpoint, with its size; close it. */
    record Opened(InputStream in, long size, Runnable shutdown) implements java.io.Closeable {
        @Override
        public void close() throws IOException {
            try {
                in.close();
            } finally {
                shutdown.run();
            }
        }
    }

    /**
     * Opens {@code uri} on {@code endpoint}; fails with {@code CREDENTIALS_UNKNOWN}, {@code
     * SOURCE_REFUSED}, {@code SOURCE_NOT_FOUND} or {@code SOURCE_UNREACHABLE}, saying which.
     *
     * @param sizeCheck told the object's size before any byte is read, to refuse it early
     */
    Opened open(
            String endpoint,
            String credentialsRef,
            S3Uri uri,
            java.util.function.LongConsumer sizeCheck) {
        if (credentialsRef.isBlank()) {
            throw new DatasetInvalidException(
                    "CREDENTIALS_UNKNOWN",
                    "dataset.s3_endpoint "
                            + endpoint
                            + " needs dataset.credentials_ref: the name of credentials the"
                            + " ingestion service holds for it",
                    List.of());
        }
        IngestionConfig.S3Credentials c = credentials.get(credentialsRef);
        if (c == null) {
            throw new DatasetInvalidException(
                    "CREDENTIALS_UNKNOWN",
                    "dataset.credentials_ref '"
                            + credentialsRef
                            + "' names no credentials of the ingestion service; an operator"
                            + " sets tuneline.ingestion.s3-credentials.\""
                            + credentialsRef
                            + "\".access-key and .secret-key",
                    List.of());
        }
        URI url;
        try {
            url = URI.create(endpoint);
        } catch (IllegalArgumentException e) {
            url = null;
        }
        if (url == null
                || url.getScheme() == null
                || !List.of("http", "https").contains(url.getScheme().toLowerCase(Locale.ROOT))
                || url.getHost() == null) {
            throw new DatasetInvalidException(
                    "JOB_INVALID",
                    "dataset.s3_endpoint '"
                            + endpoint
                            + "' is not an http(s) URL such as https://s3.eu-west-1.amazonaws.com",
                    List.of());
        }
        hosts.checkHost("dataset.s3_endpoint", url, url.getHost().toLowerCase(Locale.ROOT));

        OkHttpClient http =
                new OkHttpClient.Builder()
                        .connectTimeout(TIMEOUT)
                        .readTimeout(Duration.ofMinutes(5))
                        .followRedirects(false)
                        .build();
        Runnable shutdown =
                () -> {
                    http.dispatcher().executorService().shutdown();
                    http.connectionPool().evictAll();
                };
        MinioClient.Builder b =
                MinioClient.builder()
                        .endpoint(endpoint)
                        .credentials(c.accessKey(), c.secretKey())
                        .httpClient(http);
        c.region().ifPresent(b::region);
        MinioClient client = b.build();
        String where = "dataset.uri " + uri + " at " + endpoint;
        try {
            long size =
                    client.statObject(
                                    StatObjectArgs.builder()
                                            .bucket(uri.bucket())
                                            .object(uri.key())
                                            .build())
                            .size();
            sizeCheck.accept(size);
            InputStream in =
                    client.getObject(
                            GetObjectArgs.builder().bucket(uri.bucket()).object(uri.key()).build());
            return new Opened(in, size, shutdown);
        } catch (ErrorResponseException e) {
            close(shutdown);
            String code = e.errorResponse().code();
            if ("NoSuchKey".equals(code) || "NoSuchBucket".equals(code)) {
                throw new DatasetInvalidException(
                        "SOURCE_NOT_FOUND", where + " does not exist (" + code + ")", List.of());
            }
            throw new DatasetInvalidException(
                    "SOURCE_UNREACHABLE",
                    where
                            + " could not be read: "
                            + code
                            + " "
                            + e.errorResponse().message()
                            + " (credentials '"
                            + credentialsRef
                            + "')",
                    List.of());
        } catch (DatasetInvalidException e) {
            close(shutdown);
            throw e;
        } catch (Exception e) {
            close(shutdown);
            throw new DatasetInvalidException(
                    "SOURCE_UNREACHABLE", where + " could not be read: " + e, List.of());
        }
    }

    private static void close(Runnable shutdown) {
        shutdown.run();
    }
}
