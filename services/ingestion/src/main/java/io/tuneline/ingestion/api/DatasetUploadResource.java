package io.tuneline.ingestion.api;

import io.smallrye.common.annotation.Blocking;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.ArtifactStoreException;
import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.source.SizeLimitedInputStream;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * {@code POST /api/v1/datasets?filename=reviews.csv}: stores the request body unchanged under
 * {@code uploads/{uuid}/{filename}} and answers with the {@code s3://} URI to put in a job's {@code
 * dataset.uri}, with its sha256 and size. The body streams to the store; it is never held whole. A
 * {@code multipart/form-data} body (an HTML form, {@code curl -F file=@reviews.csv}) stores its
 * part named {@code file} the same way, named by the part's file name or else {@code filename}.
 */
@Path("/api/v1/datasets")
public class DatasetUploadResource {
    private static final Pattern FILENAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
    private static final MediaType PROBLEM = new MediaType("application", "problem+json");

    private final ArtifactStore store;
    private final IngestionConfig config;

    @Inject
    public DatasetUploadResource(ArtifactStore store, IngestionConfig config) {
        this.store = store;
        this.config = config;
    }

    @POST
    @Consumes(MediaType.WILDCARD)
    @Produces(MediaType.APPLICATION_JSON)
    @Blocking
    public Response upload(
            InputStream body,
            @QueryParam("filename") String filename,
            @HeaderParam(HttpHeaders.CONTENT_LENGTH) Long length,
            @HeaderParam(HttpHeaders.CONTENT_TYPE) String contentType,
            @HeaderParam(HttpHeaders.AUTHORIZATION) String authorization)
            throws IOException {
        Optional<String> token = config.uploadToken();
        if (token.isPresent() && !authorized(authorization, token.get())) {
            return problem(
                    401,
                    "Unauthorized",
                    "uploads need 'Authorization: Bearer <tuneline.ingestion.upload-token>'");
        }
        Optional<String> boundary = MultipartReader.boundary(contentType);
        if (boundary.isPresent()) {
            // A form upload: the file is the part named "file"; the length is the whole form's.
            if (boundary.get().isEmpty()) {
                return problem(400, "Bad request", "the multipart/form-data body has no boundary");
            }
            Optional<MultipartReader.Part> file;
            try {
                file = new MultipartReader(body, boundary.get()).find("file");
            } catch (IOException e) {
                return problem(400, "Bad request", "unreadable multipart body: " + e.getMessage());
            }
            if (file.isEmpty()) {
                return problem(
                        400,
                        "Bad request",
                        "the multipart/form-data body has no part named 'file'");
            }
            String partName = file.get().filename();
            // Browsers may send a path; only its last segment names the file.
            partName =
                    partName.substring(
                            Math.max(partName.lastIndexOf('/'), partName.lastIndexOf('\\')) + 1);
            return store(file.get().content(), partName.isBlank() ? filename : partName, null);
        }
        return store(body, filename, length);
    }

    private Response store(InputStream body, String filename, Long length) {
        String name = filename == null || filename.isBlank() ? "dataset" : filename.strip();
        if (!FILENAME.matcher(name).matches()) {
            return problem(
                    400, "Bad request", "filename '" + name + "' must match " + FILENAME.pattern());
        }
        if (length != null && length > config.maxBytes()) {
            return problem(
                    413,
                    "Payload too large",
                    "the body has "
                            + length
                            + " bytes, more than tuneline.ingestion.max-bytes ("
                            + config.maxBytes()
                            + ")");
        }
        var uri = store.uri("uploads/" + UUID.randomUUID() + "/" + name);
        var limited = new SizeLimitedInputStream(body, config.maxBytes(), "the upload");
        try {
            var ref =
                    store.put(
                            uri, limited, length == null ? -1 : length, "application/octet-stream");
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("uri", ref.getUri());
            out.put("sha256", ref.getSha256());
            out.put("size_bytes", ref.getSizeBytes());
            return Response.status(201).entity(out).build();
        } catch (ArtifactStoreException e) {
            DatasetInvalidException tooLarge =
                    SizeLimitedInputStream.limitBehind(e).orElseThrow(() -> e);
            return problem(413, "Payload too large", tooLarge.getMessage());
        }
    }

    private static boolean authorized(String header, String token) {
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return false;
        }
        return MessageDigest.isEqual(
                header.substring(7).trim().getBytes(StandardCharsets.UTF_8),
                token.getBytes(StandardCharsets.UTF_8));
    }

    private static Response problem(int status, String title, String detail) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("type", "about:blank");
        body.put("title", title);
        body.put("status", status);
        body.put("detail", detail);
        body.put("instance", "/api/v1/datasets");
        return Response.status(status).type(PROBLEM).entity(body).build();
    }
}
