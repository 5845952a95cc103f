package io.tuneline.registry.api;

import io.smallrye.common.annotation.Blocking;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.registry.db.Page;
import io.tuneline.registry.error.RegistryException;
import io.tuneline.registry.models.ModelChangeEvents;
import io.tuneline.registry.models.ModelQueries;
import io.tuneline.registry.models.ModelViews.Artifact;
import io.tuneline.registry.models.ModelViews.Comparison;
import io.tuneline.registry.models.ModelViews.Lineage;
import io.tuneline.registry.models.ModelViews.ModelView;
import io.tuneline.registry.models.ModelViews.TransitionView;
import io.tuneline.registry.models.ModelViews.VersionRef;
import io.tuneline.registry.models.ModelViews.VersionView;
import io.tuneline.registry.models.Stage;
import io.tuneline.registry.models.StageTransitions;
import jakarta.inject.Inject;
import jakarta.validation.Valid;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Positive;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.DefaultValue;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** Models and versions: browse, compare, trace lineage, download, move stages and aliases. */
@Path("/api/v1")
@Produces(MediaType.APPLICATION_JSON)
@Blocking
public class ModelsResource {
    private final ModelQueries models;
    private final StageTransitions transitions;
    private final ArtifactStore store;
    private final RegistryConfig config;
    private final ModelChangeEvents events;

    @Inject
    public ModelsResource(
            ModelQueries models,
            StageTransitions transitions,
            ArtifactStore store,
            RegistryConfig config,
            ModelChangeEvents events) {
        this.models = models;
        this.transitions = transitions;
        this.events = events;
        this.store = store;
        this.config = config;
    }

    /** Body of a stage change. */
    public record StageChange(@NotBlank String stage, String reason) {}

    /** Body of an alias change. */
    public record AliasChange(@NotNull @Positive Long version, String reason) {}

    @GET
    @Path("/models")
    @Operation(summary = "List registered models")
    public Page<ModelView> list(
            @QueryParam("task") String task,
            @QueryParam("page") @DefaultValue("0") @Min(0) int page,
            @QueryParam("size") @DefaultValue("20") @Min(1) @Max(200) int size) {
        return models.models(Optional.ofNullable(task).filter(t -> !t.isBlank()), page, size);
    }

    @GET
    @Path("/models/{name}")
    public ModelView model(@PathParam("name") String name) {
        return models.model(name);
    }

    @GET
    @Path("/models/{name}/versions")
    @Operation(summary = "A model's versions, newest first")
    public Page<VersionView> versions(
            @PathParam("name") String name,
            @QueryParam("page") @DefaultValue("0") @Min(0) int page,
            @QueryParam("size") @DefaultValue("20") @Min(1) @Max(200) int size) {
        return models.versions(name, page, size);
    }

    @GET
    @Path("/models/{name}/versions/{version}")
    @Operation(summary = "A version, by number or alias")
    public VersionView version(
            @PathParam("name") String name, @PathParam("version") String version) {
        return models.version(name, version);
    }

    @GET
    @Path("/models/{name}/versions/{version}/lineage")
    @Operation(summary = "Where a version came from, and which versions share its dataset or base")
    public Lineage lineage(@PathParam("name") String name, @PathParam("version") String version) {
        return models.lineage(name, version);
    }

    @GET
    @Path("/models/{name}/versions/{version}/downloads")
    @Operation(summary = "The version's files and reports with presigned download URLs")
    public List<Artifact> downloads(
            @PathParam("name") String name, @PathParam("version") String version) {
        return models.version(name, version).artifacts().stream()
                .map(
                        a ->
                                a.withUrl(
                                        store.presignedGet(
                                                S3Uri.parse(a.uri()), config.downloadUrlTtl())))
                .toList();
    }

    @GET
    @Path("/models/{name}/history")
    @Operation(summary = "Every stage and alias change of a model, oldest first")
    public List<TransitionView> history(@PathParam("name") String name) {
        return models.history(name);
    }

    @GET
    @Path("/models/{name}/compare")
    @Operation(summary = "Compare two versions' metrics and parameters (b minus a)")
    public Comparison compare(
            @PathParam("name") String name,
            @QueryParam("a") @NotBlank String a,
            @QueryParam("b") @NotBlank String b) {
        return models.compare(name, a, b);
    }

    @PUT
    @Path("/models/{name}/versions/{version}/stage")
    @Consumes(MediaType.APPLICATION_JSON)
    @Operation(summary = "Move a version to a stage; PRODUCTION archives the previous one")
    public VersionView setStage(
            @PathParam("name") String name,
            @PathParam("version") long version,
            @Valid @NotNull StageChange change,
            @HeaderParam("X-Tuneline-Actor") String actor) {
        String who = actor(actor);
        events.announce(
                transitions.setStage(
                        name, version, Stage.parse(change.stage()), who, change.reason()),
                who,
                change.reason());
        return models.version(name, Long.toString(version));
    }

    @PUT
    @Path("/models/{name}/aliases/{alias}")
    @Consumes(MediaType.APPLICATION_JSON)
    @Operation(summary = "Point an alias at a version, moving it atomically")
    public VersionView setAlias(
            @PathParam("name") String name,
            @PathParam("alias") String alias,
            @Valid @NotNull AliasChange change,
            @HeaderParam("X-Tuneline-Actor") String actor) {
        if (alias.matches("\\d+")) {
            throw new RegistryException.BadRequest(
                    "alias '" + alias + "' is a number and would hide a version number");
        }
        String who = actor(actor);
        events.announce(
                transitions.setAlias(name, alias, change.version(), who, change.reason()),
                who,
                change.reason());
        return models.version(name, Long.toString(change.version()));
    }

    @DELETE
    @Path("/models/{name}/aliases/{alias}")
    @Operation(summary = "Remove an alias")
    public Map<String, Object> removeAlias(
            @PathParam("name") String name,
            @PathParam("alias") String alias,
            @HeaderParam("X-Tuneline-Actor") String actor) {
        String who = actor(actor);
        StageTransitions.Changed removed = transitions.removeAlias(name, alias, who, null);
        events.announce(removed, who, null);
        return Map.of(
                "model",
                name,
                "alias",
                alias,
                "removed_from_version",
                removed.changes().get(0).getVersion());
    }

    @GET
    @Path("/lineage/versions")
    @Operation(summary = "Versions made from a dataset (raw sha256) or a base model")
    public List<VersionRef> versionsUsing(
            @QueryParam("dataset_sha256") String dataset, @QueryParam("base_model") String base) {
        return models.versionsUsing(
                Optional.ofNullable(dataset).filter(s -> !s.isBlank()),
                Optional.ofNullable(base).filter(s -> !s.isBlank()));
    }

    private static String actor(String header) {
        return header == null || header.isBlank() ? "api" : header.trim();
    }
}
