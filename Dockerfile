# The sidecar's container image: built with the .NET SDK, run on the ASP.NET Core runtime image as
# a non-root user, with only the published output. Configuration comes from the environment
# (Sidecar__UpstreamUrl, Sidecar__Store__Redis, ...; see docs/configuration.md).
#
#   docker build -t c010-sidecar .
#   docker run -p 8080:8080 -p 8081:8081 -e Sidecar__UpstreamUrl=http://host.docker.internal:3000 c010-sidecar

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files alone, so that the layer is reused while only code changes.
COPY Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Sidecar/Sidecar.csproj src/Sidecar/
RUN dotnet restore src/Sidecar/Sidecar.csproj
COPY src/Sidecar/ src/Sidecar/
RUN dotnet publish src/Sidecar/Sidecar.csproj -c Release -o /app --no-restore /p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
# The image's unprivileged user (uid 1654); the root filesystem can be mounted read-only.
USER $APP_UID
ENV ASPNETCORE_ENVIRONMENT=Production \
    DOTNET_gcServer=0 \
    Logging__Console__FormatterName=json \
    Sidecar__Listen__Address=0.0.0.0 \
    Sidecar__Listen__PublicPort=8080 \
    Sidecar__Listen__ManagementPort=8081 \
    ASPNETCORE_HTTP_PORTS=
EXPOSE 8080 8081
ENTRYPOINT ["dotnet", "Sidecar.dll"]
