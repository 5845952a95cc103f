package io.tuneline.serving.api;

import io.tuneline.serving.load.LoadedModel;
import io.tuneline.serving.load.LoadedModels;
import io.tuneline.serving.load.ServingConfig;
import io.tuneline.serving.registry.RegisteredVersion;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.regex.Pattern;

/**
 * Candidates: a trained run loaded before it is registered, so that evaluation's scenario stage can
 * replay requests against it through the same endpoints registered versions answer on. {@code PUT
 * /v1/candidates/{name}} loads the files given (as the training run lists them in the store) under
 * {@code name:candidate}; {@code DELETE} unloads it once the requests it admitted are answered.
 */
@Path("/v1/candidates/{name}")
public class CandidatesResource {
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    private final LoadedModels models;
    private final ServingConfig config;

    public CandidatesResource(LoadedModels models, ServingConfig config) {
        this.models = models;
        this.config = config;
    }

    /** A file of the run's model directory, as its {@code TrainingCompleted} lists it. */
    public record CandidateFile(String path, String uri, String sha256, long size_bytes) {}

    /** The run to load: its model files, method, base model and sequence length. */
    public record CandidateRequest(
            List<CandidateFile> files, String method, String base_model, Integer max_seq_length) {}

    public record CandidateLoaded(String id, String task, int files) {}

    @PUT
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    public CandidateLoaded load(
            @PathParam("name") String name,
            @HeaderParam("Authorization") String authorization,
            CandidateRequest request) {
        authorize(authorization);
        requireName(name);
        if (request == null || request.files() == null || request.files().isEmpty()) {
            throw ServingException.badRequest(
                    "the body names no model files: {\"files\": [{\"path\": \"config.json\","
                            + " \"uri\": \"s3://...\", \"sha256\": \"...\", \"size_bytes\": 1}],"
                            + " \"method\": \"LORA\", \"max_seq_length\": 128}");
        }
        List<RegisteredVersion.ModelFile> files = new ArrayList<>();
        for (int i = 0; i < request.files().size(); i++) {
            CandidateFile f = request.files().get(i);
            if (f == null
                    || f.path() == null
                    || f.path().isBlank()
                    || f.uri() == null
                    || f.uri().isBlank()) {
                throw ServingException.badRequest("files[" + i + "] needs a path and a uri");
            }
            files.add(
                    new RegisteredVersion.ModelFile(
                            f.path(),
                            f.uri(),
                            f.sha256() == null ? "" : f.sha256(),
                            f.size_bytes()));
        }
        Integer maxSeq = request.max_seq_length();
        LoadedModel loaded =
                models.loadCandidate(
                        new RegisteredVersion(
                                name,
                                RegisteredVersion.CANDIDATE,
                                request.base_model() == null ? "" : request.base_model(),
                                request.method() == null ? "" : request.method(),
                                maxSeq != null && maxSeq > 0
                                        ? OptionalInt.of(maxSeq)
                                        : OptionalInt.empty(),
                                files));
        return new CandidateLoaded(loaded.version().id(), loaded.task(), files.size());
    }

    @DELETE
    public Response unload(
            @PathParam("name") String name, @HeaderParam("Authorization") String authorization) {
        authorize(authorization);
        requireName(name);
        if (!models.unloadCandidate(name)) {
            throw ServingException.unknownModel("no candidate '" + name + "' is loaded");
        }
        return Response.noContent().build();
    }

    private static void requireName(String name) {
        if (!NAME.matcher(name).matches()) {
            throw ServingException.badRequest(
                    "candidate name '"
                            + name
                            + "' must be 1-128 letters, digits, '.', '_' or '-', starting with a"
                            + " letter or digit");
        }
    }

    private void authorize(String authorization) {
        if (config.candidates().token().isEmpty()) {
            return;
        }
        byte[] expected =
                ("Bearer " + config.candidates().token().get()).getBytes(StandardCharsets.UTF_8);
        byte[] given =
                (authorization == null ? "" : authorization).getBytes(StandardCharsets.UTF_8);
        if (!MessageDigest.isEqual(expected, given)) {
            throw new ServingException(
                    401,
                    "Unauthorized",
                    "loading or unloading a candidate needs 'Authorization: Bearer <token>' with"
                            + " tuneline.serving.candidates.token");
        }
    }
}
